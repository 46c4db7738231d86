# glmmTMB 1.1.5 reference for a hurdle NB1 model whose deviance in the random-intercept
# variance has a local optimum on the bound (zero) and the global one inside (glamm's fit
# stopped at the bound before the interior restart of glmm/fit.py). sim_hurdle_nb1.csv is one
# response of a simulated battery (R, set.seed(20261202)): 25 groups of 16 rows, x ~ N(0, 1),
# z ~ U(0, 1), log mean 0.4 + 0.5 x plus group effects, NB2 counts (size 2) set to zero with
# probability plogis(-1 + 0.8 z).
suppressMessages(library(glmmTMB))
suppressMessages(library(jsonlite))
d <- read.csv("sim_hurdle_nb1.csv")
d$g <- factor(d$g)
m <- glmmTMB(y ~ x + (1 | g), data = d, family = truncated_nbinom1(), ziformula = ~ z)
m0 <- glmmTMB(y ~ x, data = d, family = truncated_nbinom1(), ziformula = ~ z)
out <- list(logLik = as.numeric(logLik(m)), sd_g = sqrt(VarCorr(m)$cond$g[1]),
            cond = unname(fixef(m)$cond), zi = unname(fixef(m)$zi), sigma = sigma(m),
            cond_se = unname(sqrt(diag(vcov(m)$cond))),
            logLik_no_random_effect = as.numeric(logLik(m0)),
            convergence = m$fit$convergence, pdHess = m$sdr$pdHess,
            notes = paste("sigma is NB1's phi (Var = mu (1 + phi));",
                          "glmmTMB", as.character(packageVersion("glmmTMB"))))
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "tmb_hurdle_nb1.json")
