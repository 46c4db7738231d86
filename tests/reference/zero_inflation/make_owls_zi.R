# Zero parts on the NB1 and generalized Poisson families (glmmTMB 1.1.5, R 4.2.2) on glmmTMB's
# Owls data (Roulin & Bersier 2007); Owls.csv is written by write.csv of the columns used.
library(glmmTMB); library(jsonlite)
data(Owls, package = "glmmTMB")
Owls$NCalls <- Owls$SiblingNegotiation
Owls$logBS <- log(Owls$BroodSize)
write.csv(Owls[, c("Nest", "FoodTreatment", "SexParent", "ArrivalTime", "NCalls", "logBS",
                  "BroodSize")], "Owls.csv", row.names = FALSE)
f <- NCalls ~ FoodTreatment + offset(logBS) + (1 | Nest)
fits <- list(
 zinb1 = glmmTMB(NCalls ~ FoodTreatment * SexParent + offset(logBS) + (1 | Nest), ziformula = ~1, family = nbinom1, data = Owls),
 hnb1 = glmmTMB(f, ziformula = ~ FoodTreatment, family = truncated_nbinom1, data = Owls),
 hgp = glmmTMB(f, ziformula = ~ FoodTreatment, family = truncated_genpois, data = Owls),
 zigp = glmmTMB(f, ziformula = ~ FoodTreatment, family = genpois, data = Owls))
out <- lapply(fits, function(m) list(call = deparse(m$call, width.cutoff = 500L),
  logLik = as.numeric(logLik(m)), fixef = unname(fixef(m)$cond), zi = unname(fixef(m)$zi),
  se = unname(sqrt(diag(vcov(m)$cond))), se_zi = unname(sqrt(diag(vcov(m)$zi))),
  sigma = sigma(m), sd_nest = unname(attr(VarCorr(m)$cond$Nest, "stddev")),
  conv = m$fit$convergence, pdHess = m$sdr$pdHess))
write(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "tmb_owls_zi.json")
