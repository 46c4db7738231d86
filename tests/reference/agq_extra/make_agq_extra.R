## Extra lme4 references for scalar random-intercept adaptive Gauss-Hermite fits (nAGQ > 1).
## Run from this directory: Rscript make_agq_extra.R
## Writes data/*.csv, data/datasets.json and ref/<case>.json.
##
## lme4 1.1-31 reports, for nAGQ > 1, a log-likelihood built from deviance residuals, i.e. the
## full log-likelihood minus that of the saturated model. logLik_full adds the saturated
## log-likelihood back (normalizing_constant):
##   Poisson:            sum(dpois(y, y, log = TRUE))  = sum(y log y - y - lgamma(y + 1))
##   binomial, cbind:    sum(dbinom(s, n, s / n, log = TRUE))
##                       = sum(lchoose(n, s) + s log(s/n) + (n - s) log(1 - s/n))
##   binary 0/1:         0
## (Adding only -sum(lgamma(y + 1)) or sum(lchoose(n, s)) is not enough: on cbpp it gives
## +135.47.) The correction is checked on cbpp (logit, nAGQ = 25), whose full value is
## -91.98337 (tests/reference/README.md), and every case is checked against the marginal
## log-likelihood at lme4's estimates computed by integrate() per cluster (logLik_integrate).
suppressPackageStartupMessages({library(lme4); library(jsonlite)})
dir.create("data", showWarnings = FALSE)
dir.create("ref", showWarnings = FALSE)

ctrl <- glmerControl(optimizer = "bobyqa",
                     optCtrl = list(rhoend = 1e-10, maxfun = 1e5), tolPwrss = 1e-13)

## --- data ---
data(grouseticks, package = "lme4")
grouse <- grouseticks[, c("TICKS", "YEAR", "BROOD")]
grouse$BROOD <- droplevels(grouse$BROOD)
grouse$YEAR <- droplevels(grouse$YEAR)

data(cbpp, package = "lme4")
cbpp_d <- cbpp[, c("herd", "incidence", "size", "period")]

set.seed(20240611)
ng <- 60; m <- 6
simbin <- data.frame(g = factor(rep(sprintf("g%02d", seq_len(ng)), each = m)),
                     x = round(rnorm(ng * m), 4))
u <- rnorm(ng, sd = 1.2)
eta <- -0.4 + 0.8 * simbin$x + u[as.integer(simbin$g)]
simbin$y <- rbinom(ng * m, 1, plogis(eta))

datasets <- list(grouseticks = list(d = grouse, source = "lme4 1.1.31",
                                    note = "lme4::grouseticks, columns TICKS, YEAR, BROOD"),
                 cbpp = list(d = cbpp_d, source = "lme4 1.1.31", note = NULL),
                 sim_binary_agq = list(d = simbin, source = "simulated, make_agq_extra.R",
                                       note = "set.seed(20240611); 60 clusters of 6; y ~ Bernoulli(plogis(-0.4 + 0.8 x + u)), u ~ N(0, 1.2^2)"))

col_meta <- function(v, nm) {
  out <- list(name = nm)
  if (is.ordered(v)) { out$type <- "ordered"; out$levels <- levels(v) }
  else if (is.factor(v)) { out$type <- "factor"; out$levels <- levels(v) }
  else if (is.integer(v)) out$type <- "integer"
  else out$type <- "numeric"
  out$n_missing <- sum(is.na(v))
  out
}
catalogue <- list()
for (nm in names(datasets)) {
  d <- datasets[[nm]]$d
  file <- paste0(nm, ".csv")
  write.csv(d, file.path("data", file), row.names = FALSE, na = "NA")
  catalogue[[nm]] <- list(name = nm, source = datasets[[nm]]$source, file = file,
                          nrow = nrow(d), ncol = ncol(d), note = datasets[[nm]]$note,
                          columns = unname(Map(col_meta, d, names(d))))
}
writeLines(toJSON(catalogue, auto_unbox = TRUE, pretty = TRUE, null = "null", digits = NA),
           file.path("data", "datasets.json"))

## --- fits ---
fit_case <- function(case, dataset, formula, fam_arg, nagq, const, d) {
  warns <- character()
  fit <- withCallingHandlers(
    glmer(as.formula(formula), data = d, family = fam_arg, nAGQ = nagq, control = ctrl),
    warning = function(w) { warns <<- c(warns, conditionMessage(w)); invokeRestart("muffleWarning") })
  ll <- as.numeric(logLik(fit))
  fam <- stats::family(fit)
  ## independent check: marginal log-likelihood by adaptive numerical integration
  X <- getME(fit, "X"); y <- getME(fit, "y"); w <- weights(fit)  # y proportions for cbind
  g <- getME(fit, "flist")[[1]]; sd_u <- getME(fit, "theta")[[1]]
  lin <- drop(X %*% fixef(fit))
  cond <- function(i, u) {
    mu <- fam$linkinv(lin[i] + u)
    if (fam$family == "poisson") sum(dpois(y[i], mu, log = TRUE))
    else sum(dbinom(round(y[i] * w[i]), w[i], mu, log = TRUE))
  }
  ll_int <- sum(vapply(split(seq_along(y), g), function(i) {
    um <- optimize(function(u) cond(i, u) + dnorm(u, 0, sd_u, log = TRUE),
                   c(-20, 20), maximum = TRUE)
    f <- function(u) exp(vapply(u, function(v) cond(i, v), 0) +
                         dnorm(u, 0, sd_u, log = TRUE) - um$objective)
    log(integrate(f, -Inf, Inf, rel.tol = 1e-12, abs.tol = 0)$value) + um$objective
  }, 0))
  list(case = case, dataset = dataset, formula = formula,
       family = fam$family, link = fam$link, nagq = nagq,
       call = paste(deparse(getCall(fit)), collapse = " "),
       control = "glmerControl(optimizer = \"bobyqa\", optCtrl = list(rhoend = 1e-10, maxfun = 1e5), tolPwrss = 1e-13)",
       versions = list(R = as.character(getRversion()),
                       lme4 = as.character(packageVersion("lme4"))),
       warnings = warns, messages = fit@optinfo$conv$lme4$messages,
       fixef = as.list(fixef(fit)),
       fixef_se = as.list(sqrt(diag(as.matrix(vcov(fit))))),
       theta = as.list(setNames(getME(fit, "theta"), names(getME(fit, "theta")))),
       logLik_lme4 = ll, normalizing_constant = const, logLik_full = ll + const,
       logLik_integrate = ll_int,
       nobs = nobs(fit), ngroups = as.list(ngrps(fit)))
}

## check of the correction: cbpp logit, 25 points
chk <- fit_case("check", "cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)",
                binomial, 25, sum(dbinom(cbpp$incidence, cbpp$size, cbpp$incidence / cbpp$size, log = TRUE)),
                cbpp_d)
cat(sprintf("cbpp logit nAGQ=25: lme4 %.6f, full %.6f (expected -91.98337)\n",
            chk$logLik_lme4, chk$logLik_full))
cat(sprintf("  by integrate(): %.6f\n", chk$logLik_integrate))
stopifnot(abs(chk$logLik_full - (-91.98337)) < 1e-4)

cases <- list(
  fit_case("agq_grouseticks_pois_agq15", "grouseticks", "TICKS ~ YEAR + (1 | BROOD)",
           poisson, 15, sum(dpois(grouse$TICKS, grouse$TICKS, log = TRUE)), grouse),
  fit_case("agq_cbpp_probit_agq9", "cbpp",
           "cbind(incidence, size - incidence) ~ period + (1 | herd)",
           binomial(link = "probit"), 9,
           sum(dbinom(cbpp_d$incidence, cbpp_d$size, cbpp_d$incidence / cbpp_d$size, log = TRUE)),
           cbpp_d),
  fit_case("agq_simbin_agq11", "sim_binary_agq", "y ~ x + (1 | g)", binomial, 11, 0, simbin))
for (r in cases) {
  writeLines(toJSON(r, auto_unbox = TRUE, pretty = TRUE, null = "null", digits = NA),
             file.path("ref", paste0(r$case, ".json")))
  cat(sprintf("%-30s logLik_full %.8f  integrate %.8f  warnings: %s\n", r$case,
              r$logLik_full, r$logLik_integrate,
              paste(c(r$warnings, r$messages), collapse = "; ")))
}
