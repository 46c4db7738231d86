# Reference fits for tests/test_families_extra.py (glmmTMB 1.1.5, R 4.2.2); run in this
# folder. The fam_*.json files next to this script were copied from the shared oracle
# (../shared/reference/ref); this script makes the beta-binomial fit and the log-densities at
# given parameters (glmmTMB's parametrizations; R's d*() functions).
library(glmmTMB); library(jsonlite)
cbpp <- read.csv("cbpp.csv")
cbpp$herd <- factor(cbpp$herd, levels = 1:15); cbpp$period <- factor(cbpp$period, levels = 1:4)
m <- glmmTMB(cbind(incidence, size - incidence) ~ period + (1 | herd), family = betabinomial,
             data = cbpp)
t0 <- system.time(for (i in 1:3) update(m))[["elapsed"]] / 3
out <- list(call = "glmmTMB(cbind(incidence, size - incidence) ~ period + (1 | herd), family = betabinomial, data = cbpp)",
  logLik = as.numeric(logLik(m)), fixef = fixef(m)$cond, fixef_se = sqrt(diag(vcov(m)$cond)),
  sigma = sigma(m), betad = unname(fixef(m)$disp),
  betad_se = unname(sqrt(diag(vcov(m, full = TRUE)))["d~(Intercept)"]),
  sd_herd = unname(attr(VarCorr(m)$cond$herd, "stddev")),
  timing = list(median_elapsed_s = t0),
  notes = "betabinomial: success probability ~ Beta(mu phi, (1 - mu) phi), sigma() = phi = exp(betad)")
write(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "tmb_cbpp_betabinomial.json")
# log-densities at given parameters
y_cnt <- c(0, 1, 3, 7, 20); mu_cnt <- c(0.4, 2.5, 3, 10, 12); phi1 <- 2.3
y01 <- c(0.01, 0.2, 0.5, 0.77, 0.995); mu01 <- c(0.1, 0.3, 0.5, 0.6, 0.9); phib <- 7.5
k <- c(0, 2, 5, 9, 1); n <- c(4, 10, 5, 12, 1)
yt <- c(-3, 0.2, 1, 4.5, 10); mut <- c(0, 0.5, 1, 2, 1); sig <- 1.7; df <- 3.4
dens <- list(
  nbinom1 = dnbinom(y_cnt, size = mu_cnt / phi1, mu = mu_cnt, log = TRUE),
  beta = dbeta(y01, mu01 * phib, (1 - mu01) * phib, log = TRUE),
  betabinomial = lchoose(n, k) + lbeta(k + mu01 * phib, n - k + (1 - mu01) * phib) -
    lbeta(mu01 * phib, (1 - mu01) * phib),
  t = dt((yt - mut) / sig, df, log = TRUE) - log(sig),
  inputs = list(y_cnt = y_cnt, mu_cnt = mu_cnt, phi1 = phi1, y01 = y01, mu01 = mu01,
                phib = phib, k = k, n = n, yt = yt, mut = mut, sig = sig, df = df))
write(toJSON(dens, digits = NA, auto_unbox = TRUE, pretty = TRUE), "densities.json")
# models without random effects (glamm.glm): glmmTMB with no random-effects term
sal <- read.csv("Salamanders.csv"); sal$mined <- factor(sal$mined, levels = c("yes", "no"))
sim <- read.csv("sim_families.csv")
glm_refs <- list(
  nbinom1 = glmmTMB(count ~ mined, family = nbinom1, data = sal),
  beta = glmmTMB(y_beta ~ x, family = beta_family(), data = sim),
  t = glmmTMB(y_t ~ x, family = t_family, data = sim),
  genpois = glmmTMB(count ~ mined, family = genpois, data = sal),
  tweedie = glmmTMB(y_tweedie ~ x, family = tweedie, data = sim))
out <- lapply(glm_refs, function(m) list(logLik = as.numeric(logLik(m)),
  fixef = unname(fixef(m)$cond), fixef_se = unname(sqrt(diag(vcov(m)$cond))),
  sigma = sigma(m), psi = unname(m$fit$par["psi"])))
out$tweedie$power <- 1 + plogis(out$tweedie$psi)
write(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "tmb_glm_families.json")
# generalized Poisson (glmmTMB's genpois: theta = mu / sqrt(phi), lambda = 1 - 1 / sqrt(phi))
m_gp <- glmmTMB(count ~ mined + (1 | site), family = genpois, data = sal)
t_gp <- system.time(for (i in 1:3) update(m_gp))[["elapsed"]] / 3
gp <- list(call = "glmmTMB(count ~ mined + (1 | site), family = genpois, data = Salamanders)",
  logLik = as.numeric(logLik(m_gp)), fixef = unname(fixef(m_gp)$cond),
  fixef_se = unname(sqrt(diag(vcov(m_gp)$cond))), sigma = sigma(m_gp),
  sd_site = unname(attr(VarCorr(m_gp)$cond$site, "stddev")),
  timing = list(median_elapsed_s = t_gp),
  density = list(y = c(0, 1, 4, 9), mu = c(0.5, 2, 3.5, 6), phi = 1.8,
    logp = {th <- c(0.5, 2, 3.5, 6) / sqrt(1.8); la <- 1 - 1 / sqrt(1.8); y <- c(0, 1, 4, 9)
            log(th) + (y - 1) * log(th + la * y) - th - la * y - lgamma(y + 1)}),
  notes = "sigma() = phi: Var = mu * phi")
write(toJSON(gp, digits = NA, auto_unbox = TRUE, pretty = TRUE), "tmb_salamanders_genpois.json")
# Tweedie (glmmTMB's tweedie: power = 1 + plogis(psi), sigma() = phi) on the simulated data
m_tw <- glmmTMB(y_tweedie ~ x + (1 | g), family = tweedie, data = sim)
t_tw <- system.time(for (i in 1:3) update(m_tw))[["elapsed"]] / 3
tw <- list(call = "glmmTMB(y_tweedie ~ x + (1 | g), family = tweedie, data = sim_families)",
  logLik = as.numeric(logLik(m_tw)), fixef = unname(fixef(m_tw)$cond),
  fixef_se = unname(sqrt(diag(vcov(m_tw)$cond))), sigma = sigma(m_tw),
  power = unname(1 + plogis(m_tw$fit$par["psi"])),
  sd_g = unname(attr(VarCorr(m_tw)$cond$g, "stddev")),
  timing = list(median_elapsed_s = t_tw),
  notes = "Var = phi mu^power; sigma() = phi")
write(toJSON(tw, digits = NA, auto_unbox = TRUE, pretty = TRUE), "tmb_sim_tweedie.json")
