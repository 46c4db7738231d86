# Run in tests/reference/zero_inflation: Rscript make_hurdle_nb2.R (glmmTMB 1.1.5)
suppressPackageStartupMessages({library(glmmTMB); library(jsonlite)})
d <- read.csv("Salamanders.csv")
d$mined <- factor(d$mined, levels = c("yes", "no")); d$site <- factor(d$site)
d$spp <- factor(d$spp, levels = c("GP", "PR", "DM", "EC-A", "EC-L", "DES-L", "DF"))
t0 <- Sys.time()
m <- glmmTMB(count ~ spp + mined + (1 | site), ziformula = ~ mined, data = d, family = truncated_nbinom2)
el <- as.numeric(Sys.time() - t0)
out <- list(call = "glmmTMB(count ~ spp + mined + (1 | site), ziformula = ~mined, data = Salamanders, family = truncated_nbinom2)",
  logLik = as.numeric(logLik(m)), fixef = list(cond = as.list(fixef(m)$cond), zi = as.list(fixef(m)$zi)),
  fixef_se = list(cond = as.list(sqrt(diag(vcov(m)$cond))), zi = as.list(sqrt(diag(vcov(m)$zi)))),
  sigma = sigma(m), elapsed_s = el,
  notes = "hurdle NB2: logit P(y = 0) = zi model; positive counts zero-truncated NB2 (sigma = NB2 size)")
write(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "tmb_salamanders_hurdle_nb2.json")
print(out$logLik); print(out$sigma)
