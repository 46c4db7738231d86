# Extra smooth-model references for glamm's tests (run from this directory with
#   Rscript make_gamm_extra.R
# R 4.2, mgcv 1.8-41, gamm4 0.2-6, lme4 1.1-31). Writes data_*.csv and one JSON per case.
# The tests read only the files written here; they never need R.
suppressMessages({library(mgcv); library(gamm4); library(jsonlite)})

d <- read.csv("../../../src/glamm/datasets/data/gamm4_sim1.csv")
d$fac <- factor(d$fac)
set.seed(20261121)
d$g3 <- factor(c("a", "b", "c")[1 + (d$x3 > 0.33) + (d$x3 > 0.66)])
eta <- -0.5 + 2 * sin(2 * pi * d$x2) + rnorm(20, 0, 0.7)[as.integer(d$fac)]
d$yb <- rbinom(nrow(d), 1, plogis(eta))
d$cnt <- rpois(nrow(d), exp(0.3 + sin(2 * pi * d$x0) + rnorm(20, 0, 0.4)[as.integer(d$fac)]))
d$yby <- d$y + c(a = 0, b = 1, c = -1)[as.character(d$g3)] * cos(2 * pi * d$x2)
write.csv(d[, c("y", "x0", "x1", "x2", "x3", "fac", "g3", "yb", "cnt", "yby")],
          "data_sim1_extra.csv", row.names = FALSE)

grid_of <- function(g, smooth_label, sm, data) {
  v <- sm$term[1]
  x <- seq(min(data[[v]]), max(data[[v]]), length = 50)
  nd <- data[rep(1, 50), , drop = FALSE]
  nd[[v]] <- x
  if (!is.null(sm$by.level)) nd[[sm$by]] <- factor(sm$by.level, levels = levels(data[[sm$by]]))
  p <- predict(g, nd, type = "terms", se.fit = TRUE)
  # the other covariates of the smooth (and a numeric by variable) are held at row 1's values
  others <- setdiff(c(sm$term, if (sm$by != "NA" && is.null(sm$by.level)) sm$by), v)
  at <- lapply(setNames(others, others), function(o) data[[o]][1])
  list(covariate = v, x = x, fit = unname(p$fit[, smooth_label]), se = unname(p$se.fit[, smooth_label]),
       at = at)
}

dump_gam <- function(g, data, extra) {
  st <- summary(g)$s.table
  grids <- list()
  for (sm in g$smooth) grids[[sm$label]] <- grid_of(g, sm$label, sm, data)
  pt <- summary(g)$p.table
  c(extra, list(
    parametric = list(estimate = as.list(setNames(pt[, 1], rownames(pt))),
                      se = as.list(setNames(pt[, 2], rownames(pt)))),
    sp = as.list(g$sp), scale = g$sig2, sigma = sqrt(g$sig2),
    edf_by_smooth = as.list(sapply(g$smooth, function(s) sum(g$edf[s$first.para:s$last.para])) |>
                              setNames(sapply(g$smooth, function(s) s$label))),
    s_table = list(rownames = rownames(st), colnames = colnames(st), values = unname(st)),
    smooth_grids = grids))
}

cases <- list()
# 1. gamm4, cubic regression splines, REML
f <- gamm4(y ~ s(x0, bs = "cr") + x1 + s(x2, bs = "cr"), data = d, random = ~(1 | fac))
cases$gamm4_cr_reml <- dump_gam(f$gam, d, list(formula = "y ~ s(x0, bs='cr') + x1 + s(x2, bs='cr') + (1 | fac)",
  method = "REML", REMLcrit = REMLcrit(f$mer)))
# 2. mgcv gam without random effects (REML) = glamm lmer with smooths only
g <- gam(y ~ s(x2, bs = "cr", k = 12) + x1, data = d, method = "REML")
cases$gam_cr_only_reml <- dump_gam(g, d, list(formula = "y ~ s(x2, bs='cr', k=12) + x1",
  method = "REML", REMLcrit = 2 * g$gcv.ubre))
# 3. P-splines, ML (gamm4)
f <- gamm4(y ~ s(x2, bs = "ps") + x1, data = d, random = ~(1 | fac), REML = FALSE)
cases$gamm4_ps_ml <- dump_gam(f$gam, d, list(formula = "y ~ s(x2, bs='ps') + x1 + (1 | fac)",
  method = "ML", logLik = as.numeric(logLik(f$mer))))
# 4. a factor by variable (one smooth per level), REML
f <- gamm4(yby ~ g3 + s(x2, by = g3, bs = "cr"), data = d, random = ~(1 | fac))
cases$gamm4_by_reml <- dump_gam(f$gam, d, list(formula = "yby ~ g3 + s(x2, by=g3, bs='cr') + (1 | fac)",
  method = "REML", REMLcrit = REMLcrit(f$mer)))
# 5. binomial GAMM (Laplace)
f <- gamm4(yb ~ s(x2, bs = "cr"), data = d, random = ~(1 | fac), family = binomial)
cases$gamm4_binomial <- dump_gam(f$gam, d, list(formula = "yb ~ s(x2, bs='cr') + (1 | fac)",
  family = "binomial", logLik = as.numeric(logLik(f$mer))))
# 6. Poisson GAMM (Laplace)
f <- gamm4(cnt ~ s(x0, bs = "cr") + x1, data = d, random = ~(1 | fac), family = poisson)
cases$gamm4_poisson <- dump_gam(f$gam, d, list(formula = "cnt ~ s(x0, bs='cr') + x1 + (1 | fac)",
  family = "poisson", logLik = as.numeric(logLik(f$mer))))
# 7. thin plate, no random effect, several k
g <- gam(y ~ s(x0, k = 6) + s(x2), data = d, method = "REML")
cases$gam_tp_only_reml <- dump_gam(g, d, list(formula = "y ~ s(x0, k=6) + s(x2)",
  method = "REML", REMLcrit = 2 * g$gcv.ubre))

# 8. a two-covariate thin plate smooth and a shrinkage thin plate smooth, gamm4 (REML)
f <- gamm4(y ~ s(x0, x2, k = 20) + s(x1, bs = "ts", k = 6), data = d, random = ~(1 | fac))
cases$gamm4_tp2d_ts_reml <- dump_gam(f$gam, d, list(formula = "y ~ s(x0, x2, k=20) + s(x1, bs='ts', k=6) + (1 | fac)",
  method = "REML", REMLcrit = REMLcrit(f$mer)))
# 9. a numeric by variable (varying coefficient: no centring constraint), mgcv gam (REML)
g <- gam(y ~ s(x2, by = x1, bs = "cr") + s(x0, bs = "cr"), data = d, method = "REML")
cases$gam_numeric_by_reml <- dump_gam(g, d, list(formula = "y ~ s(x2, by=x1, bs='cr') + s(x0, bs='cr')",
  method = "REML", REMLcrit = 2 * g$gcv.ubre))

# 10. an unpenalized regression spline (fx = TRUE) next to a penalized one, mgcv gam (REML)
g <- gam(y ~ s(x2, bs = "cr", k = 6, fx = TRUE) + s(x0, bs = "cr"), data = d, method = "REML")
cases$gam_fx_reml <- dump_gam(g, d, list(formula = "y ~ s(x2, bs='cr', k=6, fx=True) + s(x0, bs='cr')",
  method = "REML", REMLcrit = 2 * g$gcv.ubre))

# 11. maximum likelihood without random effects (mgcv gam, method = "ML")
g <- gam(y ~ s(x2) + s(x0, bs = "ps"), data = d, method = "ML")
cases$gam_ml <- dump_gam(g, d, list(formula = "y ~ s(x2) + s(x0, bs='ps')",
  method = "ML", logLik = -g$gcv.ubre))
# 12. prior weights (gamm4, REML)
d$w <- 1 + (d$x3 > 0.5)
write.csv(d[, c("y", "x0", "x1", "x2", "x3", "fac", "g3", "yb", "cnt", "yby", "w")],
          "data_sim1_extra.csv", row.names = FALSE)
f <- gamm4(y ~ s(x2, bs = "cr") + x1, data = d, random = ~(1 | fac), weights = d$w)
cases$gamm4_weights_reml <- dump_gam(f$gam, d, list(formula = "y ~ s(x2, bs='cr') + x1 + (1 | fac)",
  method = "REML", REMLcrit = REMLcrit(f$mer), weights = "w"))

for (nm in names(cases)) write_json(cases[[nm]], paste0(nm, ".json"), digits = NA, auto_unbox = TRUE, pretty = FALSE)
