# Reference numbers for tests/test_t2_smooths.py: gamm4 fits with t2() tensor-product smooths.
# Run from the repository root: Rscript tests/reference/t2/make_t2.R
# (mgcv 1.8-41, gamm4 0.2-6, lme4; writes tests/reference/t2/t2_refs.json)
suppressPackageStartupMessages({library(gamm4); library(jsonlite)})
d <- read.csv("tests/reference/t2/t2sim.csv")
d$g <- factor(d$g)
fit <- function(form, reml, family = gaussian()) {
  if (family$family == "gaussian")
    m <- gamm4(form, random = ~(1 | g), data = d, REML = reml)
  else
    m <- gamm4(form, random = ~(1 | g), data = d, family = family)
  vc <- as.data.frame(VarCorr(m$mer))
  list(call = paste(deparse(form), collapse = ""), reml = reml, family = family$family,
       loglik = as.numeric(logLik(m$mer)),
       fitted = as.numeric(fitted(m$mer)),
       edf = sum(m$gam$edf),
       s_table = as.list(as.data.frame(summary(m$gam)$s.table)),
       sdcor = setNames(as.list(vc$sdcor), vc$grp))
}
refs <- list(
  t2_ml = fit(y ~ t2(x, z), FALSE),
  t2_reml = fit(y ~ t2(x, z), TRUE),
  t2_k46_ml = fit(y ~ t2(x, z, k = c(4, 6), bs = "cr"), FALSE),
  t2_k46_reml = fit(y ~ t2(x, z, k = c(4, 6), bs = "cr"), TRUE),
  t2_y2_ml = fit(y2 ~ t2(x, z), FALSE),
  t2_3d_ml = fit(y2 ~ t2(x, z, w, k = 4), FALSE),
  t2_tp_ml = fit(y ~ t2(x, z, bs = c("tp", "cr"), k = 6), FALSE),
  t2_binomial = fit(yb ~ t2(x, z), NA, binomial())
)
refs$versions <- list(mgcv = as.character(packageVersion("mgcv")),
                      gamm4 = as.character(packageVersion("gamm4")),
                      lme4 = as.character(packageVersion("lme4")))
write_json(refs, "tests/reference/t2/t2_refs.json", digits = NA, auto_unbox = TRUE, pretty = TRUE)
