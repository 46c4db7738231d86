# Zero-inflated and hurdle models with a random intercept in the zero part (glmmTMB 1.1.5)
library(glmmTMB); library(jsonlite)
sal <- read.csv("Salamanders.csv")
sal$mined <- factor(sal$mined, levels = c("yes", "no"))
sal$spp <- factor(sal$spp, levels = c("GP", "PR", "DM", "EC-A", "EC-L", "DES-L", "DF"))
sal$site <- factor(sal$site)
fits <- list(
  zip = glmmTMB(count ~ spp + mined + (1 | site), zi = ~ mined + (1 | site), family = poisson, data = sal),
  zinb2 = glmmTMB(count ~ spp + mined + (1 | site), zi = ~ mined + (1 | site), family = nbinom2, data = sal),
  hurdle_poisson = glmmTMB(count ~ spp + mined + (1 | site), zi = ~ mined + (1 | site), family = truncated_poisson, data = sal),
  zip_slope = glmmTMB(count ~ spp + mined + (1 | site), zi = ~ mined + (1 + cover | site), family = poisson, data = sal))
out <- lapply(names(fits), function(nm) { m <- fits[[nm]]
  t0 <- system.time(for (i in 1:3) update(m))[["elapsed"]] / 3
  vc <- VarCorr(m)
  list(call = deparse(m$call, width.cutoff = 500L), logLik = as.numeric(logLik(m)),
       convergence = m$fit$convergence, pdHess = m$sdr$pdHess,
       fixef_cond = fixef(m)$cond, fixef_zi = fixef(m)$zi,
       se_cond = sqrt(diag(vcov(m)$cond)), se_zi = sqrt(diag(vcov(m)$zi)),
       sd_cond = unname(attr(vc$cond$site, "stddev")), sd_zi = unname(attr(vc$zi$site, "stddev")),
       cor_zi = if (ncol(vc$zi$site) > 1) unname(attr(vc$zi$site, "correlation")[2, 1]) else NULL,
       sigma = sigma(m), par = m$fit$par, objective = m$fit$objective,
       timing = list(median_elapsed_s = t0)) })
names(out) <- names(fits)
write(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "tmb_zi_random.json")
