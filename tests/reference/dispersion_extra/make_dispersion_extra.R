# Reference fits for tests/test_glmm_dispersion.py (glmmTMB 1.1.5, R 4.2.2); run in this folder.
library(glmmTMB); library(jsonlite)
set.seed(11)
n_id <- 60; per <- 8
id <- rep(seq_len(n_id), each = per)
grp <- factor(sample(c("lo", "hi"), n_id * per, replace = TRUE), levels = c("lo", "hi"))
x <- runif(n_id * per)
b <- rnorm(n_id, 0, 0.4)
mu <- exp(0.5 + 0.8 * x + b[id])
shape <- ifelse(grp == "lo", 6, 1.5)
y <- rgamma(n_id * per, shape = shape, rate = shape / mu)
d <- data.frame(id = factor(id), grp = grp, x = x, y = y)
write.csv(d, "gamma_disp.csv", row.names = FALSE)
m <- glmmTMB(y ~ x + (1 | id), dispformula = ~ grp, family = Gamma(link = "log"), data = d)
tmb_record <- function(m, call, notes, ...) {
  list(call = call, logLik = as.numeric(logLik(m)), fixef = fixef(m)$cond,
       disp = fixef(m)$disp, fixef_se = sqrt(diag(vcov(m)$cond)),
       disp_se = sqrt(diag(vcov(m)$disp)), ..., notes = notes)
}
out <- tmb_record(m, "glmmTMB(y ~ x + (1 | id), dispformula = ~ grp, family = Gamma(link = 'log'))",
  "glmmTMB 1.1.5 Gamma dispformula models log(shape) = -log(phi) (phi = 1/shape): glamm delta = -disp/2 on the log-SD scale, its log(dispersion) = -disp intercept",
  sd_id = attr(VarCorr(m)$cond$id, "stddev"))
write(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "tmb_gamma_disp.json")
# log-linear Gaussian dispformula ~ x on the same id structure
set.seed(5)
yg <- 1 + 0.5 * x + b[id] + rnorm(n_id * per, 0, exp(-0.3 + 0.9 * x))
dg <- data.frame(id = factor(id), x = x, y = yg)
write.csv(dg, "gauss_dispx.csv", row.names = FALSE)
m2 <- glmmTMB(y ~ x + (1 | id), dispformula = ~ x, family = gaussian, data = dg)
out2 <- tmb_record(m2, "glmmTMB(y ~ x + (1 | id), dispformula = ~ x, family = gaussian)",
  "glmmTMB's Gaussian dispformula is on the log-variance scale: twice the log-SD coefficients",
  sd_id = attr(VarCorr(m2)$cond$id, "stddev"))
write(toJSON(out2, digits = NA, auto_unbox = TRUE, pretty = TRUE), "tmb_gauss_dispx.json")

# A one-factor model with item-specific residual variances (classical factor analysis as a
# mixed model): glmmTMB's rr(0 + item | id, d = 1) with dispformula = ~ item; galamm's form
# fixes the first loading at 1 (lambda_j = L_j / L_1, latent SD |L_1|) and writes the
# variances as ~ (1 | item).
set.seed(21)
n_id <- 250
items <- c("i1", "i2", "i3", "i4")
lam <- c(1, 0.8, 1.3, 0.6)
sds <- c(0.5, 0.9, 0.7, 1.2)
eta <- rnorm(n_id, 0, 1.1)
fa <- expand.grid(item = items, id = seq_len(n_id), stringsAsFactors = FALSE)
j <- match(fa$item, items)
fa$x <- runif(nrow(fa))
fa$y <- 0.5 * (j - 2) + 0.4 * fa$x + lam[j] * eta[fa$id] + rnorm(nrow(fa), 0, sds[j])
fa$item <- factor(fa$item, levels = items)
fa$id <- factor(fa$id)
write.csv(fa[, c("id", "item", "x", "y")], "factor_items_disp.csv", row.names = FALSE)
m3 <- glmmTMB(y ~ 0 + item + x + rr(0 + item | id, d = 1), dispformula = ~ item,
              family = gaussian, data = fa)
L <- m3$obj$env$report(m3$fit$parfull)$fact_load[[1]][, 1]
out3 <- tmb_record(m3, "glmmTMB(y ~ 0 + item + x + rr(0 + item | id, d = 1), dispformula = ~ item, family = gaussian)",
  "disp: log residual variance, item i1 the intercept; glamm's log-SD ratios are half the item coefficients",
  rr_loadings = L, loadings = L / L[1], latent_sd = abs(L[1]))
write(toJSON(out3, digits = NA, auto_unbox = TRUE, pretty = TRUE), "tmb_factor_items_disp.json")

# nlme's varPower on Orthodont: SD proportional to |age|^power (ML and REML) and to
# |fitted|^power (varPower(), nlme's fixed-point iteration in the fitted values).
library(nlme)
od <- read.csv("../data/Orthodont.csv")
od$Subject <- factor(od$Subject); od$Sex <- factor(od$Sex, levels = c("Male", "Female"))
vp <- function(m) list(logLik = as.numeric(logLik(m)), fixef = fixef(m),
  power = as.numeric(coef(m$modelStruct$varStruct, unconstrained = FALSE)),
  sigma = m$sigma, sd_subject = as.numeric(VarCorr(m)[1, "StdDev"]),
  fixef_se = sqrt(diag(vcov(m))))
vp_out <- list(
  age = vp(lme(distance ~ age * Sex, random = ~ 1 | Subject, data = od, method = "ML",
               weights = varPower(form = ~ age))),
  fitted = vp(lme(distance ~ age * Sex, random = ~ 1 | Subject, data = od, method = "ML",
                  weights = varPower())),
  age_reml = vp(lme(distance ~ age * Sex, random = ~ 1 | Subject, data = od, method = "REML",
                    weights = varPower(form = ~ age))),
  notes = "nlme 3.1; sigma is the residual SD where |v| = 1")
write(toJSON(vp_out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "nlme_varpower.json")
