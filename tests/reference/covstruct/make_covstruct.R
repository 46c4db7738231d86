# Further glmmTMB 1.1.5 references for tests/test_covstruct.py; run in this folder:
#   Rscript make_covstruct.R
# Each fit is written as <case>.json with the call, logLik, fixed effects and SEs, the
# residual SD and the structure's natural parameters (glmmTMB's parametrizations: rho =
# a / sqrt(1 + a^2) for ar1 and toep lags, ou corr = exp(-exp(a) d), exp corr = exp(-d / exp(a)),
# gau exp(-d^2 / exp(2 a)), mat range exp(a) with kappa exp(b)).
suppressPackageStartupMessages({library(glmmTMB); library(jsonlite); library(nlme)})
data(Orthodont, package = "nlme")
od <- as.data.frame(Orthodont); od$Subject <- factor(as.character(od$Subject))
od$Sex <- factor(od$Sex, levels = c("Male", "Female")); od$fage <- factor(od$age)
data(sleepstudy, package = "lme4"); sleepstudy$fDays <- factor(sleepstudy$Days)
sp <- read.csv("sim_spatial.csv"); sp$group <- factor(sp$group); sp$pos <- numFactor(sp$x, sp$y)
record <- function(m, call, extra = list()) {
  c(list(call = call, logLik = as.numeric(logLik(m)), fixef = fixef(m)$cond,
         fixef_se = sqrt(diag(vcov(m)$cond)), sigma = sigma(m),
         theta = m$fit$par[names(m$fit$par) == "theta"],
         converged = m$fit$convergence == 0, pdHess = m$sdr$pdHess), extra)
}
out <- list()
fit_or_note <- function(name, expr) {
  res <- tryCatch(expr, error = function(e) { message(name, ": ", conditionMessage(e)); NULL })
  if (!is.null(res)) write(toJSON(res, digits = NA, auto_unbox = TRUE, pretty = TRUE), paste0(name, ".json"))
}
# toep with a residual fails in glmmTMB 1.1.5 here ("infinite or missing values"); without
# one (dispformula = ~0, the structure carrying all the variance) it converges
fit_or_note("tmb_orthodont_toep_nores", {
m <- glmmTMB(distance ~ age * Sex + toep(fage + 0 | Subject), data = od, REML = FALSE,
             dispformula = ~0)
th <- m$fit$par[names(m$fit$par) == "theta"]
record(m, "glmmTMB(distance ~ age * Sex + toep(fage + 0 | Subject), data = Orthodont, REML = FALSE, dispformula = ~0)",
  list(sd = exp(th[1:4]), lag_corr = th[5:7] / sqrt(1 + th[5:7]^2)))
})
fit_or_note("tmb_sleepstudy_toep_nores", {
m <- glmmTMB(Reaction ~ Days + toep(fDays + 0 | Subject), data = sleepstudy, REML = FALSE,
             dispformula = ~0)
th <- m$fit$par[names(m$fit$par) == "theta"]
record(m, "glmmTMB(Reaction ~ Days + toep(factor(Days) + 0 | Subject), data = sleepstudy, REML = FALSE, dispformula = ~0)",
  list(sd = exp(th[1:10]), lag_corr = th[11:19] / sqrt(1 + th[11:19]^2)))
})
sleepstudy$times <- numFactor(sleepstudy$Days)
fit_or_note("tmb_sleepstudy_ou", {
m <- glmmTMB(Reaction ~ Days + ou(times + 0 | Subject), data = sleepstudy, REML = FALSE)
th <- m$fit$par[names(m$fit$par) == "theta"]
record(m, "glmmTMB(Reaction ~ Days + ou(numFactor(Days) + 0 | Subject), data = sleepstudy, REML = FALSE)",
  list(sd = exp(th[1]), range = exp(-th[2])))
})
fit_or_note("tmb_spatial_gau", {
m <- glmmTMB(resp ~ z + gau(pos + 0 | group), data = sp, REML = FALSE)
th <- m$fit$par[names(m$fit$par) == "theta"]
record(m, "glmmTMB(resp ~ z + gau(numFactor(x, y) + 0 | group), data = sim_spatial, REML = FALSE)",
  list(sd = exp(th[1]), range = exp(th[2])))
})
fit_or_note("tmb_spatial_mat15", {
m <- glmmTMB(resp ~ z + mat(pos + 0 | group), data = sp, REML = FALSE,
             start = list(theta = c(0, log(1), log(1.5))), map = list(theta = factor(c(1, 2, NA))))
th <- m$fit$par[names(m$fit$par) == "theta"]
record(m, "glmmTMB(resp ~ z + mat(numFactor(x, y) + 0 | group), data = sim_spatial, REML = FALSE, map: kappa fixed at 1.5)",
  list(sd = exp(th[1]), range = exp(th[2]), kappa = 1.5))
})
# a GLMM with a structured term (Laplace): binary outcomes over 6 occasions, ar1 within id
set.seed(12)
n_id <- 80; occ <- 6
b <- t(sapply(seq_len(n_id), function(i) { e <- numeric(occ); e[1] <- rnorm(1); for (k in 2:occ) e[k] <- 0.7 * e[k - 1] + sqrt(1 - 0.49) * rnorm(1); 1.2 * e }))
gd <- expand.grid(occ = seq_len(occ), id = seq_len(n_id))
gd$x <- rnorm(nrow(gd)); gd$focc <- factor(gd$occ); gd$id <- factor(gd$id)
gd$y <- rbinom(nrow(gd), 1, plogis(-0.3 + 0.8 * gd$x + b[cbind(as.integer(gd$id), gd$occ)]))
write.csv(gd[, c("id", "occ", "focc", "x", "y")], "binary_ar1.csv", row.names = FALSE)
fit_or_note("tmb_binary_ar1", {
m <- glmmTMB(y ~ x + ar1(focc + 0 | id), data = gd, family = binomial)
th <- m$fit$par[names(m$fit$par) == "theta"]
record(m, "glmmTMB(y ~ x + ar1(focc + 0 | id), data = binary_ar1, family = binomial)",
  list(sd = exp(th[1]), rho = th[2] / sqrt(1 + th[2]^2)))
})

# Wald standard errors of the shape parameters (glmmTMB's full covariance, delta method to
# the natural scale): ar1's rho on sleepstudy (the shared tmb_sleepstudy_ar1_start fit) and the
# exponential range on sim_spatial (cov_spatial_exp_tmb)
se <- list()
m <- glmmTMB(Reaction ~ Days + ar1(fDays + 0 | Subject), data = sleepstudy,
             start = list(theta = c(log(40), 2)))
V <- vcov(m, full = TRUE); th <- m$fit$par[names(m$fit$par) == "theta"]
i <- grep("theta", colnames(V))[2]
se$ar1_rho <- list(estimate = th[2] / sqrt(1 + th[2]^2), se = sqrt(V[i, i]) * (1 + th[2]^2)^(-1.5))
m <- glmmTMB(resp ~ z + exp(pos + 0 | group), data = sp)
V <- vcov(m, full = TRUE); th <- m$fit$par[names(m$fit$par) == "theta"]
j <- grep("theta", colnames(V))[2]
se$exp_range <- list(estimate = exp(th[2]), se = exp(th[2]) * sqrt(V[j, j]))
write(toJSON(se, digits = NA, auto_unbox = TRUE, pretty = TRUE), "tmb_structure_se.json")

# nlme's lme with a residual correlation structure (glamm's lmer(correlation=)):
# written to nlme_lme_correlation.json
data(sleepstudy, package = "lme4")
m1 <- lme(Reaction ~ Days, random = ~ 1 | Subject, correlation = corAR1(form = ~ Days | Subject),
          data = sleepstudy, method = "ML")
m2 <- lme(Reaction ~ Days, random = ~ 1 | Subject, correlation = corAR1(form = ~ Days | Subject),
          data = sleepstudy, method = "REML", control = lmeControl(maxIter = 200, msMaxIter = 200))
od2 <- as.data.frame(Orthodont); od2$Subject <- factor(as.character(od2$Subject))
od2$Sex <- factor(od2$Sex, levels = c("Male", "Female"))
m3 <- lme(distance ~ age * Sex, random = ~ 1 | Subject,
          correlation = corExp(form = ~ age | Subject, nugget = TRUE), data = od2, method = "ML")
lme_record <- function(m) list(logLik = as.numeric(logLik(m)), fixef = fixef(m),
  fixef_se = sqrt(diag(vcov(m))), sigma = m$sigma,
  sd_re = as.numeric(VarCorr(m)[-nrow(VarCorr(m)), "StdDev"]),
  cor = coef(m$modelStruct$corStruct, unconstrained = FALSE))
write(toJSON(list(ar1_int_ml = lme_record(m1), ar1_int_reml = lme_record(m2),
                  exp_nugget_ml = lme_record(m3)), digits = NA, auto_unbox = TRUE, pretty = TRUE),
      "nlme_lme_correlation.json")
