# glmmTMB 1.1.5 reference for a hurdle NB2 model with a random intercept in the zero part
# whose deviance in that intercept's SD has a stationary point at zero (a local optimum of
# glamm's fit before the restart in zi_random_api.fit_two_part) and the optimum inside.
# sim_hurdle_zero_re.csv is the `y_zinb` response of benchmarks/crosscheck_families.py's
# simulation (NumPy seed 20261202) with its x, z and g.
suppressMessages(library(glmmTMB))
suppressMessages(library(jsonlite))
d <- read.csv("sim_hurdle_zero_re.csv")
d$g <- factor(d$g)
m <- glmmTMB(y ~ x + (1 | g), data = d, family = truncated_nbinom2(), ziformula = ~ z + (1 | g))
m0 <- glmmTMB(y ~ x + (1 | g), data = d, family = truncated_nbinom2(), ziformula = ~ z)
vc <- VarCorr(m)
out <- list(logLik = as.numeric(logLik(m)), cond = unname(fixef(m)$cond),
            zi = unname(fixef(m)$zi), sigma = sigma(m),
            sd_cond = sqrt(vc$cond$g[1]), sd_zi = sqrt(vc$zi$g[1]),
            cond_se = unname(sqrt(diag(vcov(m)$cond))), zi_se = unname(sqrt(diag(vcov(m)$zi))),
            logLik_no_zero_part_re = as.numeric(logLik(m0)),
            convergence = m$fit$convergence, pdHess = m$sdr$pdHess,
            notes = paste("sigma is NB2's size; glmmTMB", as.character(packageVersion("glmmTMB"))))
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "tmb_hurdle_zero_re.json")
