# Reference for tests/test_compois.py (glmmTMB 1.1.5, TMB's dcompois2, R 4.2.2); run in this
# folder. glmmTMB's compois: P(y) = lambda^y / (y!)^nu / Z(lambda, nu), lambda solved from the
# mean mu (log link), nu = 1 / phi with phi = exp(betad) = sigma().
library(glmmTMB); library(jsonlite)
# --- simulated data: CMP counts with a random intercept, under- (nu = 2) and over- (nu = 0.5)
# dispersed; the sampler solves lambda from mu by uniroot on the series summed over 0..400
cmp_probs <- function(mu, nu) {
  j <- 0:400
  lp <- function(ll) { l <- j * ll - nu * lgamma(j + 1); exp(l - max(l)) / sum(exp(l - max(l))) }
  ll <- uniroot(function(ll) sum(j * lp(ll)) - mu, nu * log(mu) + c(-30, 30), tol = 1e-12)$root
  lp(ll)
}
rcmp <- function(mu, nu) vapply(mu, function(m) sample(0:400, 1, prob = cmp_probs(m, nu)), 0)
set.seed(20261202)
d <- data.frame(g = factor(rep(1:40, each = 10)), x = rnorm(400))
b <- rnorm(40, sd = 0.4)
mu <- exp(1 + 0.4 * d$x + b[d$g])
d$y_under <- rcmp(mu, 2)
d$y_over <- rcmp(mu, 0.5)
write.csv(d, "sim_compois.csv", row.names = FALSE)
d <- read.csv("sim_compois.csv"); d$g <- factor(d$g)
fit_ref <- function(resp) {
  f <- as.formula(paste(resp, "~ x + (1 | g)"))
  m <- glmmTMB(f, family = compois, data = d)
  el <- replicate(3, system.time(update(m))[["elapsed"]])
  list(call = paste0("glmmTMB(", resp, " ~ x + (1 | g), family = compois, data = sim_compois)"),
       logLik = as.numeric(logLik(m)), fixef = unname(fixef(m)$cond),
       fixef_se = unname(sqrt(diag(vcov(m)$cond))), sigma = sigma(m),
       betad = unname(fixef(m)$disp),
       sd_g = unname(attr(VarCorr(m)$cond$g, "stddev")),
       timing = list(median_elapsed_s = median(el)))
}
fits <- list(under = fit_ref("y_under"), over = fit_ref("y_over"))
# --- log-densities at given parameters: glmmTMB's own (dcompois2 in its TMB template), from a
# one-row model whose mean (offset, intercept fixed at 0) and phi are fixed by map/start;
# -obj$fn() at the fixed parameters is the log-density
y <- c(0, 1, 2, 5, 0, 3, 8, 12, 0, 1, 4, 20, 2, 7)
mu <- c(0.3, 1.5, 2.2, 4, 2.5, 3, 6.5, 10, 0.05, 0.8, 5, 15, 30, 40)
phi <- c(0.5, 0.5, 0.5, 0.5, 2, 2, 2, 2, 8, 8, 0.2, 0.2, 1, 3)
logp <- mapply(function(yi, mi, pi) {
  one <- data.frame(yy = c(yi, yi), lmu = log(c(mi, mi)))
  m <- glmmTMB(yy ~ 1 + offset(lmu), family = compois, data = one,
               start = list(beta = 0, betad = log(pi)),
               map = list(beta = factor(NA), betad = factor(NA)), doFit = FALSE)
  obj <- with(m, TMB::MakeADFun(data = data.tmb, parameters = parameters, map = mapArg,
                                random = randomArg, silent = TRUE, DLL = "glmmTMB"))
  -obj$fn(numeric(0)) / 2
}, y, mu, phi)
out <- list(fits = fits,
            density = list(y = y, mu = mu, phi = phi, logp = logp,
                           notes = "two identical rows per model, log-density = -fn / 2"),
            notes = "sigma() = phi = 1 / nu = exp(betad)")
write(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "tmb_compois.json")
