# Reference fits for tests/test_glmer_extra.py: GLMMs by the Laplace approximation, each fitted
# with lme4 (glmer; glmer.nb for the negative binomial) and with glmmTMB, on links, families,
# weights, offsets and response codings glamm's own references do not cover.
#
# Run from the repository root:   Rscript tests/reference/glmm_extra/make_glmm_extra.R
#
# Writes
#   tests/reference/glmm_extra/data/<dataset>.csv   the data exactly as fitted (header, no row
#                                                   names, factors as labels, NA for missing)
#   tests/reference/glmm_extra/data/datasets.json   per data set: column types (numeric,
#                                                   integer, factor, ordered) and factor levels
#                                                   in R's order
#   tests/reference/glmm_extra/ref/<case>.json      one model each, fitted four times: lme4 and
#                                                   glmmTMB, each with its default settings and
#                                                   refitted with tight optimizer settings
#                                                   (fits$lme4, fits$lme4_tight, fits$glmmTMB,
#                                                   fits$glmmTMB_tight); for random-intercept
#                                                   models also an independent plain-R Laplace
#                                                   fit with Fisher (expected) and with exact
#                                                   (observed) weights in the log-determinant
#                                                   (own$fisher, own$exact); `best` names the
#                                                   fit the tests compare with (see below)
#
# Every model is fitted to the data read back from the CSV written here (typed by the same
# catalogue), so R and the Python tests see identical numbers. Numbers are written with the
# shortest of 15 or 17 significant digits that reads back to the same double.
#
# Which log-likelihoods are comparable. glamm, glmmTMB and the own fits report the full
# log-likelihood (all normalizing constants) of the Laplace approximation, with the dispersion
# estimated jointly by maximum likelihood. lme4 does so for the binomial, Poisson and negative
# binomial families (its logLik is -0.5 * (family$aic + |u|^2 + log det), and aic() holds the
# constants). For the Gamma, inverse Gaussian and Gaussian families it does not: lme4's PIRLS
# weights leave out the dispersion, its logLik plugs into aic() the moment estimate
# dev / n of the dispersion and adds the 2 that aic() counts for that parameter, and VarCorr
# multiplies theta by sigma. Its logLik there is recorded but is not a value of the same
# function (loglik_comparable = false) and does not compete for `best`.
#
# Laplace with expected or observed information. For a non-canonical link (binomial probit and
# cloglog, Gamma / inverse Gaussian / Gaussian with log link, and NB2 with log link, whose
# canonical link is log(mu / (mu + theta))) the second derivative of the conditional
# log-density in eta depends on y. lme4 puts the Fisher (expected) weights mu_eta^2 / V(mu)
# into log det(L L'), glmmTMB the exact (observed) Hessian; the two Laplace approximations then
# differ slightly and their optima with them. own$fisher and own$exact make the two
# approximations on the same code, so a difference between the packages can be told apart
# from an optimizer difference. (On these data own$fisher reproduces lme4's tight fit to 2e-7
# and own$exact glmmTMB's tight fit to 1e-9 in the log-likelihood, wherever they apply.)
#
# best: the fit with the highest comparable log-likelihood among the four package fits; for
# the inverse Gaussian (glmmTMB 1.1.5 has no inverse.gaussian family, lme4's value is not
# comparable) the own fit with the exact Hessian, the approximation glmmTMB makes.

suppressPackageStartupMessages({
  library(lme4)
  library(glmmTMB)
  library(jsonlite)
})

out_dir <- file.path("tests", "reference", "glmm_extra")
if (!dir.exists(out_dir)) stop("run this script from the repository root")
data_dir <- file.path(out_dir, "data")
ref_dir <- file.path(out_dir, "ref")
dir.create(data_dir, showWarnings = FALSE, recursive = TRUE)
dir.create(ref_dir, showWarnings = FALSE, recursive = TRUE)

pkg_version <- function(p) as.character(packageVersion(p))
packages <- list(lme4 = pkg_version("lme4"), glmmTMB = pkg_version("glmmTMB"),
                 TMB = pkg_version("TMB"), Matrix = pkg_version("Matrix"),
                 R = as.character(getRversion()))

# ---------------------------------------------------------------------------- data sets

get_data <- function(name, package) {
  env <- new.env()
  data(list = name, package = package, envir = env)
  d <- get(name, envir = env)
  d <- data.frame(lapply(as.list(d), function(col) {
    a <- attributes(col)
    attributes(col) <- a[intersect(names(a), c("levels", "class"))]
    col
  }), check.names = FALSE, stringsAsFactors = FALSE)
  rownames(d) <- NULL
  d
}

col_type <- function(col) {
  if (is.ordered(col)) return("ordered")
  if (is.factor(col)) return("factor")
  if (is.integer(col)) return("integer")
  if (is.numeric(col)) return("numeric")
  stop("unsupported column class ", paste(class(col), collapse = "/"))
}

format_num <- function(x) {
  s <- rep(NA_character_, length(x))
  ok <- !is.na(x)
  s[ok] <- trimws(formatC(x[ok], digits = 15, format = "g"))
  redo <- ok
  redo[ok] <- as.numeric(s[ok]) != x[ok]
  s[redo] <- trimws(formatC(x[redo], digits = 17, format = "g"))
  s
}

catalogue <- list()

write_dataset <- function(d, name, source, note = NULL) {
  file <- paste0(name, ".csv")
  cols <- lapply(names(d), function(nm) {
    col <- d[[nm]]
    entry <- list(name = nm, type = col_type(col))
    if (is.factor(col)) entry$levels <- I(levels(col))
    entry$n_missing <- sum(is.na(col))
    entry
  })
  out <- data.frame(lapply(d, function(col) {
    if (is.factor(col) || is.integer(col)) as.character(col) else format_num(col)
  }), check.names = FALSE, stringsAsFactors = FALSE)
  quote_cols <- which(vapply(d, is.factor, logical(1)))
  write.table(out, file.path(data_dir, file), sep = ",", row.names = FALSE, na = "NA",
              quote = if (length(quote_cols)) quote_cols else FALSE, fileEncoding = "UTF-8")
  catalogue[[name]] <<- list(name = name, source = source, file = file, nrow = nrow(d),
                             ncol = ncol(d), note = note, columns = cols)
  invisible(NULL)
}

# The CSV read back and typed by the catalogue, as the Python tests read it.
read_dataset <- function(name) {
  entry <- catalogue[[name]]
  raw <- read.csv(file.path(data_dir, entry$file), colClasses = "character", na.strings = "NA",
                  check.names = FALSE, encoding = "UTF-8")
  stopifnot(identical(names(raw), vapply(entry$columns, `[[`, "", "name")))
  for (col in entry$columns) {
    v <- raw[[col$name]]
    raw[[col$name]] <- switch(
      col$type,
      numeric = as.numeric(v),
      integer = as.integer(v),
      factor = {
        f <- factor(v, levels = as.character(col$levels))
        stopifnot(identical(is.na(f), is.na(v)))
        f
      },
      ordered = {
        f <- factor(v, levels = as.character(col$levels), ordered = TRUE)
        stopifnot(identical(is.na(f), is.na(v)))
        f
      }
    )
  }
  raw
}

lme4_src <- paste("lme4", pkg_version("lme4"))

write_dataset(get_data("cbpp", "lme4"), "cbpp", lme4_src)
write_dataset(get_data("grouseticks", "lme4")[, c("TICKS", "BROOD", "HEIGHT", "YEAR", "LOCATION")],
              "grouseticks", lme4_src, note = "lme4 grouseticks: the columns the model uses")
verbagg <- get_data("VerbAgg", "lme4")[, c("r2", "btype", "id", "item", "Anger", "Gender")]
write_dataset(verbagg, "VerbAgg", lme4_src,
              note = "lme4 VerbAgg, columns r2 (levels N, Y), btype, id, item, Anger, Gender")

# Inverse Gaussian draws with mean mu and dispersion phi (shape 1 / phi): Michael, Schucany and
# Haas (1976).
rinvgauss_msh <- function(mu, phi) {
  lambda <- 1 / phi
  v <- rnorm(length(mu))^2
  x <- mu + mu^2 * v / (2 * lambda) - mu / (2 * lambda) * sqrt(4 * mu * lambda * v + mu^2 * v^2)
  ifelse(runif(length(mu)) <= mu / (mu + x), x, mu^2 / x)
}

# One covariate x, a grouping factor g (30 levels, rows drawn at random) and an exposure expo;
# one response per family, each with its own random intercepts.
sim_glmm <- local({
  set.seed(20240701)
  n <- 500
  ng <- 30
  g <- factor(sprintf("g%02d", sample.int(ng, n, replace = TRUE)), levels = sprintf("g%02d", 1:ng))
  stopifnot(all(table(g) > 0))
  gi <- as.integer(g)
  x <- round(rnorm(n), 4)
  expo <- round(runif(n, 0.5, 4), 3)
  re <- function(sd) rnorm(ng, sd = sd)[gi]
  y_pois <- rpois(n, expo * exp(0.5 + 0.4 * x + re(0.6)))
  y_gamma <- signif(rgamma(n, shape = 4, rate = 4 / exp(1 + 0.3 * x + re(0.5))), 7)
  y_ig <- signif(rinvgauss_msh(exp(0.5 + 0.3 * x + re(0.4)), phi = 0.2), 7)
  y_gauss <- signif(exp(1.5 + 0.3 * x + re(0.3)) + rnorm(n, sd = 0.5), 7)
  y_nb <- rnbinom(n, size = 2, mu = exp(1 + 0.5 * x + re(0.7)))
  stopifnot(all(y_gamma > 0), all(y_ig > 0), all(y_gauss > 0))
  data.frame(y_pois = y_pois, y_gamma = y_gamma, y_ig = y_ig, y_gauss = y_gauss, y_nb = y_nb,
             x = x, expo = expo, g = g)
})
write_dataset(sim_glmm, "sim_glmm", "simulated in make_glmm_extra.R (set.seed(20240701))",
              note = paste("n = 500, g: 30 levels g01..g30 drawn uniformly, x ~ N(0, 1),",
                           "expo ~ U(0.5, 4); each response has its own random intercepts.",
                           "y_pois ~ Poisson(expo exp(0.5 + 0.4 x + b)), SD(b) = 0.6;",
                           "y_gamma ~ Gamma(shape 4, mean exp(1 + 0.3 x + b)), SD(b) = 0.5;",
                           "y_ig ~ inverse Gaussian(mean exp(0.5 + 0.3 x + b), dispersion 0.2),",
                           "SD(b) = 0.4; y_gauss = exp(1.5 + 0.3 x + b) + N(0, 0.5^2),",
                           "SD(b) = 0.3;",
                           "y_nb ~ NB2(size 2, mean exp(1 + 0.5 x + b)), SD(b) = 0.7"))

# Binary responses on a crossed design: 40 subjects x 20 items, every pair once; a correlated
# random intercept and x-slope per subject and a random intercept per item.
sim_binslope <- local({
  set.seed(20240702)
  ns <- 40
  ni <- 20
  subj <- factor(sprintf("s%02d", rep(1:ns, each = ni)), levels = sprintf("s%02d", 1:ns))
  item <- factor(sprintf("i%02d", rep(1:ni, ns)), levels = sprintf("i%02d", 1:ni))
  n <- ns * ni
  x <- round(rnorm(n), 4)
  sd_b <- c(0.9, 0.5)
  R <- matrix(c(1, 0.3, 0.3, 1), 2)
  B <- matrix(rnorm(2 * ns), ns, 2) %*% chol(diag(sd_b) %*% R %*% diag(sd_b))
  si <- as.integer(subj)
  eta <- -0.3 + 0.8 * x + B[si, 1] + B[si, 2] * x + rnorm(ni, sd = 0.6)[as.integer(item)]
  data.frame(y = rbinom(n, 1, plogis(eta)), x = x, subj = subj, item = item)
})
write_dataset(sim_binslope, "sim_binslope", "simulated in make_glmm_extra.R (set.seed(20240702))",
              note = paste("40 subjects x 20 items, each pair once; y ~ Bernoulli(plogis(-0.3 +",
                           "0.8 x + b0_subj + b1_subj x + c_item)); SD(b0, b1) = (0.9, 0.5),",
                           "corr 0.3; SD(c) = 0.6; x ~ N(0, 1)"))

write_json(catalogue, file.path(data_dir, "datasets.json"), auto_unbox = TRUE, pretty = TRUE,
           digits = NA, null = "null", na = "null")

# ---------------------------------------------------------------------------- package fits

# lme4's and glmmTMB's defaults stop on a function-value criterion that can leave them short of
# the optimum; each model is refitted with tight settings and the tests use the better fit.
# lme4's default PIRLS tolerance (tolPwrss = 1e-7) leaves the conditional modes imprecise
# enough to lower its Laplace log-likelihood visibly (cbpp: -92.026566 instead of -92.026282)
# and to make the objective rough for the optimizer; its tight refit uses tolPwrss = 1e-13.
tight_lme4 <- list(ftol_abs = 1e-14, ftol_rel = 1e-15, xtol_abs = 1e-12, xtol_rel = 0,
                   maxeval = 1e5)
tight_lme4_pwrss <- 1e-13
# glmmTMB's nlminb stops on a relative function change (rel.tol); tightening it does not help
# (nlminb then ends with "singular convergence", e.g. at max |gradient| 4.9e-4 on
# simbin_slope_crossed). The tight refit uses optim's BFGS with TMB's exact gradient instead.
tight_tmb <- list(reltol = 1e-15, maxit = 1e4)

# Evaluate `expr` collecting warnings and messages instead of printing them.
quietly <- function(expr) {
  warns <- character(0)
  msgs <- character(0)
  t0 <- proc.time()[["elapsed"]]
  value <- withCallingHandlers(
    expr,
    warning = function(cond) {
      warns <<- c(warns, conditionMessage(cond))
      invokeRestart("muffleWarning")
    },
    message = function(cond) {
      msgs <<- c(msgs, conditionMessage(cond))
      invokeRestart("muffleMessage")
    }
  )
  list(model = value, warnings = warns, messages = msgs,
       elapsed = proc.time()[["elapsed"]] - t0)
}

# The R family object of a case.
r_family <- function(family, link) {
  switch(family,
         binomial = binomial(link = link),
         poisson = poisson(link = link),
         Gamma = Gamma(link = link),
         inverse.gaussian = inverse.gaussian(link = link),
         gaussian = gaussian(link = link),
         stop("no R family object for ", family))
}

has_dispersion <- function(family) family %in% c("Gamma", "inverse.gaussian", "gaussian")

# lme4 and glmmTMB evaluate weights and offset arguments in the data first, then in the
# formula's environment; the vectors are passed under names no data set uses.
run_lme4 <- function(f, d, family, link, .ref_weights, control) {
  stopifnot(!any(c(".ref_weights") %in% names(d)))
  if (family == "nbinom2") {
    stopifnot(is.null(.ref_weights))
    quietly(lme4::glmer.nb(f, data = d, control = control))
  } else {
    quietly(lme4::glmer(f, data = d, family = r_family(family, link), weights = .ref_weights,
                        control = control))
  }
}

run_tmb <- function(f, d, family, link, .ref_weights, control) {
  fam <- if (family == "nbinom2") glmmTMB::nbinom2(link = link) else r_family(family, link)
  quietly(glmmTMB::glmmTMB(f, data = d, family = fam, weights = .ref_weights, control = control))
}

# lme4's as.data.frame(VarCorr()) row order: per term, the variances, then the covariances
# (1,2), (1,3), ..., (2,3), ...; sdcor holds SDs and correlations.
varcorr_rows <- function(covs, resid_sd = NULL) {
  rows <- list()
  for (grp in names(covs)) {
    S <- covs[[grp]]
    nm <- rownames(S)
    sds <- sqrt(diag(S))
    for (i in seq_along(nm))
      rows[[length(rows) + 1]] <- list(grp = grp, var1 = nm[i], var2 = NULL, vcov = S[i, i],
                                       sdcor = sds[[i]])
    for (i in seq_along(nm)) for (j in seq_along(nm)) if (i < j)
      rows[[length(rows) + 1]] <- list(grp = grp, var1 = nm[i], var2 = nm[j], vcov = S[i, j],
                                       sdcor = S[i, j] / (sds[[i]] * sds[[j]]))
  }
  if (!is.null(resid_sd))
    rows[[length(rows) + 1]] <- list(grp = "Residual", var1 = NULL, var2 = NULL,
                                     vcov = resid_sd^2, sdcor = resid_sd)
  rows
}

# theta in lme4's parametrization for a GLMM: per term (lme4's term order), the lower triangle
# of the Cholesky factor of the random-effects covariance, by columns.
theta_from_covs <- function(covs) {
  unlist(lapply(covs, function(S) {
    L <- t(chol(S))
    L[lower.tri(L, diag = TRUE)]
  }), use.names = FALSE)
}

lme4_summary <- function(run, family, call) {
  m <- run$model
  vc <- as.data.frame(VarCorr(m))
  rows <- lapply(seq_len(nrow(vc)), function(i) {
    list(grp = vc$grp[i], var1 = if (is.na(vc$var1[i])) NULL else vc$var1[i],
         var2 = if (is.na(vc$var2[i])) NULL else vc$var2[i], vcov = vc$vcov[i],
         sdcor = vc$sdcor[i])
  })
  th <- getME(m, "theta")
  ll <- logLik(m)
  sig <- sigma(m)
  list(
    package = "lme4",
    call = call,
    warnings = I(run$warnings),
    messages = I(run$messages),
    conv_lme4_messages = I(as.character(unlist(m@optinfo$conv$lme4$messages))),
    optimizer = I(m@optinfo$optimizer),
    nobs = nobs(m),
    ngrps = as.list(ngrps(m)),
    fixef = as.list(fixef(m)),
    fixef_se = as.list(setNames(sqrt(diag(as.matrix(vcov(m)))), names(fixef(m)))),
    theta = as.list(th),
    theta_names = I(names(th)),
    sigma = sig,
    dispersion = if (has_dispersion(family)) sig^2 else if (family == "nbinom2") NULL else 1,
    shape = if (family == "nbinom2") getME(m, "glmer.nb.theta") else NULL,
    varcorr = rows,
    logLik = as.numeric(ll),
    logLik_df = attr(ll, "df"),
    loglik_comparable = !has_dispersion(family),
    AIC = AIC(m),
    isSingular = isSingular(m),
    timing = list(elapsed_s = run$elapsed, what = "elapsed seconds of the fitting call")
  )
}

# glmmTMB's estimates in lme4's terms: random-effect terms in the lme4 fit's order (matched by
# grouping-factor name), theta converted from VarCorr.
tmb_summary <- function(run, family, call, term_order) {
  m <- run$model
  vc <- VarCorr(m)$cond
  covs <- lapply(term_order, function(grp) {
    S <- vc[[grp]]
    attributes(S) <- attributes(S)[c("dim", "dimnames")]
    S
  })
  names(covs) <- term_order
  sig <- sigma(m)
  ll <- logLik(m)
  fe <- fixef(m)$cond
  V <- vcov(m)$cond
  theta_names <- unlist(lapply(term_order, function(grp) {
    nm <- rownames(covs[[grp]])
    out <- character(0)
    for (j in seq_along(nm)) for (i in seq_along(nm)) if (i >= j)
      out <- c(out, if (i == j) paste(grp, nm[i], sep = ".") else
        paste(grp, nm[i], nm[j], sep = "."))
    out
  }))
  th <- setNames(theta_from_covs(covs), theta_names)
  grad <- m$obj$gr(m$fit$par)
  list(
    package = "glmmTMB",
    call = call,
    warnings = I(run$warnings),
    messages = I(run$messages),
    convergence = m$fit$convergence,
    optimizer_message = if (is.null(m$fit$message)) NA_character_ else m$fit$message,
    max_abs_gradient = max(abs(grad)),
    pdHess = m$sdr$pdHess,
    nobs = nobs(m),
    ngrps = as.list(vapply(m$modelInfo$reTrms$cond$flist, nlevels, 1L))[term_order],
    fixef = as.list(fe),
    fixef_se = as.list(setNames(sqrt(diag(V)), names(fe))),
    theta = as.list(th),
    theta_names = I(names(th)),
    sigma = sig,
    dispersion = if (has_dispersion(family)) sig^2 else if (family == "nbinom2") NULL else 1,
    shape = if (family == "nbinom2") sig else NULL,
    varcorr = varcorr_rows(covs, if (has_dispersion(family)) sqrt(sig^2) else NULL),
    logLik = as.numeric(ll),
    logLik_df = attr(ll, "df"),
    loglik_comparable = TRUE,
    AIC = AIC(m),
    timing = list(elapsed_s = run$elapsed, what = "elapsed seconds of the fitting call")
  )
}

# ---------------------------------------------------------------------------- own Laplace fits
# A plain implementation of the Laplace approximation for a model with one random intercept
# (u_j ~ N(0, 1), eta = X beta + offset + s u_g), written for these references only. For each
# group the conditional mode u_j* of h(u) = sum_i log p(y_i | u) - u^2 / 2 is found by Newton
# steps with step halving; then
#   log L_j = sum_i log p(y_i | u_j*) - u_j*^2 / 2 - log(1 + s^2 sum_i w_i) / 2
# with w_i the Fisher weight wt mu_eta^2 / (phi V(mu)) (lme4, glamm) or the observed
# -d^2 log p / d eta^2 (glmmTMB). log p holds every normalizing constant. (beta, log s and
# log phi or log theta) are found by nlminb, started from lme4's default estimates, and
# polished by Newton steps.

own_link <- function(link) {
  switch(link,
         logit = list(inv = plogis, d1 = function(e) { p <- plogis(e); p * (1 - p) },
                      d2 = function(e) { p <- plogis(e); p * (1 - p) * (1 - 2 * p) }),
         probit = list(inv = pnorm, d1 = dnorm, d2 = function(e) -e * dnorm(e)),
         cloglog = list(inv = function(e) -expm1(-exp(e)),
                        d1 = function(e) exp(e - exp(e)),
                        d2 = function(e) exp(e - exp(e)) * (1 - exp(e))),
         log = list(inv = exp, d1 = exp, d2 = exp),
         stop("own_link: ", link))
}

# Per observation: the log-density, its first two derivatives in mu, and the variance function.
# y: the response (binomial: the proportion), wt: prior weights (binomial: the trials),
# par: the dispersion phi (NB2: the size theta).
own_family <- function(family) {
  switch(family,
         binomial = list(
           ll = function(y, mu, wt, par) wt * (y * log(mu) + (1 - y) * log1p(-mu)) +
             lchoose(wt, round(wt * y)),
           l1 = function(y, mu, wt, par) wt * (y - mu) / (mu * (1 - mu)),
           l2 = function(y, mu, wt, par) -wt * (y / mu^2 + (1 - y) / (1 - mu)^2),
           var = function(mu, par) mu * (1 - mu)),
         poisson = list(
           ll = function(y, mu, wt, par) wt * (y * log(mu) - mu - lgamma(y + 1)),
           l1 = function(y, mu, wt, par) wt * (y / mu - 1),
           l2 = function(y, mu, wt, par) -wt * y / mu^2,
           var = function(mu, par) mu),
         Gamma = list(
           ll = function(y, mu, wt, par) {
             k <- 1 / par
             wt * (k * log(k * y / mu) - k * y / mu - log(y) - lgamma(k))
           },
           l1 = function(y, mu, wt, par) wt * (y - mu) / (par * mu^2),
           l2 = function(y, mu, wt, par) wt * (mu - 2 * y) / (par * mu^3),
           var = function(mu, par) par * mu^2),
         inverse.gaussian = list(
           ll = function(y, mu, wt, par) wt * (-0.5 * log(2 * pi * par * y^3) -
                                                 (y - mu)^2 / (2 * par * mu^2 * y)),
           l1 = function(y, mu, wt, par) wt * (y - mu) / (par * mu^3),
           l2 = function(y, mu, wt, par) wt * (2 * mu - 3 * y) / (par * mu^4),
           var = function(mu, par) par * mu^3),
         gaussian = list(
           ll = function(y, mu, wt, par) -0.5 * log(2 * pi * par / wt) -
             wt * (y - mu)^2 / (2 * par),
           l1 = function(y, mu, wt, par) wt * (y - mu) / par,
           l2 = function(y, mu, wt, par) -wt / par + 0 * y,
           var = function(mu, par) par + 0 * mu),
         nbinom2 = list(
           ll = function(y, mu, wt, par) wt * (lgamma(y + par) - lgamma(par) - lgamma(y + 1) +
                                                 par * log(par / (par + mu)) +
                                                 y * log(mu / (par + mu))),
           l1 = function(y, mu, wt, par) wt * (y / mu - (par + y) / (par + mu)),
           l2 = function(y, mu, wt, par) wt * (-y / mu^2 + (par + y) / (par + mu)^2),
           var = function(mu, par) mu + mu^2 / par),
         stop("own_family: ", family))
}

# -log L by the Laplace approximation; pars = (beta, log s, [log phi | log theta]).
own_negloglik <- function(pars, X, y, wt, offset, g, fam, lnk, info, has_par) {
  p <- ncol(X)
  beta <- pars[1:p]
  s <- exp(pars[p + 1])
  par <- if (has_par) exp(pars[p + 2]) else 1
  ng <- nlevels(g)
  gi <- as.integer(g)
  eta0 <- drop(X %*% beta) + offset
  u <- numeric(ng)
  h_of <- function(u) {
    eta <- eta0 + s * u[gi]
    mu <- lnk$inv(eta)
    rowsum(fam$ll(y, mu, wt, par), gi, reorder = TRUE)[, 1] - u^2 / 2
  }
  h <- h_of(u)
  for (iter in 1:200) {
    eta <- eta0 + s * u[gi]
    mu <- lnk$inv(eta)
    m1 <- lnk$d1(eta)
    score <- s * rowsum(fam$l1(y, mu, wt, par) * m1, gi, reorder = TRUE)[, 1] - u
    # Fisher scoring (the weights of the Gamma, inverse Gaussian and Gaussian hold phi)
    fisher <- s^2 * rowsum(wt * m1^2 / fam$var(mu, par), gi, reorder = TRUE)[, 1]
    step <- score / (fisher + 1)
    t <- rep(1, ng)
    repeat {
      h_new <- h_of(u + t * step)
      bad <- !is.finite(h_new) | h_new < h - 1e-12 * abs(h)
      if (!any(bad) || all(t < 1e-10)) break
      t[bad] <- t[bad] / 2
    }
    u <- u + t * step
    h <- h_new
    if (max(abs(t * step)) < 1e-13) break
  }
  eta <- eta0 + s * u[gi]
  mu <- lnk$inv(eta)
  m1 <- lnk$d1(eta)
  w <- if (info == "fisher") {
    wt * m1^2 / fam$var(mu, par)
  } else {
    -(fam$l2(y, mu, wt, par) * m1^2 + fam$l1(y, mu, wt, par) * lnk$d2(eta))
  }
  H <- 1 + s^2 * rowsum(w, gi, reorder = TRUE)[, 1]
  if (any(H <= 0)) return(Inf)
  -sum(h - 0.5 * log(H))
}

# Central-difference Hessian.
num_hessian <- function(f, x, rel = 1e-4) {
  k <- length(x)
  hs <- rel * pmax(1, abs(x))
  H <- matrix(0, k, k)
  f0 <- f(x)
  for (i in 1:k) for (j in i:k) {
    ei <- replace(numeric(k), i, hs[i])
    ej <- replace(numeric(k), j, hs[j])
    H[i, j] <- H[j, i] <- if (i == j) {
      (f(x + ei) - 2 * f0 + f(x - ei)) / hs[i]^2
    } else {
      (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) / (4 * hs[i] * hs[j])
    }
  }
  H
}

# Central-difference gradient.
num_gradient <- function(f, x, rel = 1e-5) {
  hs <- rel * pmax(1, abs(x))
  vapply(seq_along(x), function(i) {
    e <- replace(numeric(length(x)), i, hs[i])
    (f(x + e) - f(x - e)) / (2 * hs[i])
  }, 0)
}

own_fit <- function(info, X, y, wt, offset, g, family, link, start, group) {
  fam <- own_family(family)
  lnk <- own_link(link)
  has_par <- family %in% c("Gamma", "inverse.gaussian", "gaussian", "nbinom2")
  f <- function(p) own_negloglik(p, X, y, wt, offset, g, fam, lnk, info, has_par)
  t0 <- proc.time()[["elapsed"]]
  ctrl <- list(rel.tol = 1e-14, x.tol = 1e-12, iter.max = 1e4, eval.max = 1e4)
  opt <- nlminb(start, f, control = ctrl)
  for (k in 1:5) {  # nlminb restarted from its own result until it stops improving
    again <- nlminb(opt$par, f, control = ctrl)
    improved <- again$objective < opt$objective - 1e-13 * abs(opt$objective)
    if (again$objective <= opt$objective) opt <- again
    if (!improved) break
  }
  # Newton steps with finite-difference derivatives (nlminb's finite-difference gradient can
  # stop it short: "false convergence")
  x <- opt$par
  fx <- opt$objective
  newton_steps <- 0
  for (k in 1:20) {
    step <- tryCatch(solve(num_hessian(f, x), num_gradient(f, x)), error = function(e) NULL)
    if (is.null(step)) break
    x_new <- x - step
    f_new <- f(x_new)
    if (!is.finite(f_new) || f_new >= fx) break
    newton_steps <- newton_steps + 1
    done <- fx - f_new < 1e-13 * abs(fx)
    x <- x_new
    fx <- f_new
    if (done) break
  }
  opt$par <- x
  opt$objective <- fx
  grad <- num_gradient(f, x)
  elapsed <- proc.time()[["elapsed"]] - t0
  p <- ncol(X)
  H <- num_hessian(f, opt$par)
  V <- solve(H)
  par <- if (has_par) exp(opt$par[p + 2]) else 1
  list(
    info = info,
    logLik = -opt$objective,
    optimizer_message = opt$message,
    newton_steps = newton_steps,
    max_abs_gradient = max(abs(grad)),
    fixef = as.list(setNames(opt$par[1:p], colnames(X))),
    fixef_se = as.list(setNames(sqrt(diag(V)[1:p]), colnames(X))),
    sd = exp(opt$par[p + 1]),
    varcorr = varcorr_rows(setNames(list(matrix(exp(2 * opt$par[p + 1]), 1, 1,
                                                dimnames = list("(Intercept)", "(Intercept)"))),
                                    group),
                           if (family %in% c("Gamma", "inverse.gaussian", "gaussian")) sqrt(par)),
    nobs = length(y),
    ngrps = setNames(list(nlevels(g)), group),
    dispersion = if (family %in% c("Gamma", "inverse.gaussian", "gaussian")) par else
      if (family == "nbinom2") NULL else 1,
    shape = if (family == "nbinom2") par else NULL,
    timing = list(elapsed_s = elapsed, what = "nlminb, elapsed seconds")
  )
}

# ---------------------------------------------------------------------------- cases

fit_case <- function(case, formula, dataset, family, link, family_glamm, weights_col = NULL,
                     formula_glamm = NULL, names_glamm = NULL, note = NULL,
                     own = FALSE, tmb = TRUE) {
  d <- read_dataset(dataset)
  f <- as.formula(formula)
  .ref_weights <- if (is.null(weights_col)) NULL else d[[weights_col]]
  wtxt <- if (is.null(weights_col)) "" else sprintf(", weights = %s", weights_col)
  if (family == "nbinom2") {
    call_lme4 <- sprintf("glmer.nb(%s, data = %s%s)", formula, dataset, wtxt)
    call_tmb <- sprintf("glmmTMB(%s, data = %s, family = nbinom2(link = \"%s\")%s)", formula,
                        dataset, link, wtxt)
  } else {
    call_lme4 <- sprintf("glmer(%s, data = %s, family = %s(link = \"%s\")%s)", formula, dataset,
                         family, link, wtxt)
    call_tmb <- sprintf("glmmTMB(%s, data = %s, family = %s(link = \"%s\")%s)", formula, dataset,
                        family, link, wtxt)
  }
  tight_txt <- function(ctrl) paste(names(ctrl), unlist(ctrl), sep = " = ", collapse = ", ")

  r_lme4 <- run_lme4(f, d, family, link, .ref_weights, glmerControl())
  r_lme4_t <- run_lme4(f, d, family, link, .ref_weights,
                       glmerControl(optimizer = "nloptwrap", optCtrl = tight_lme4,
                                    tolPwrss = tight_lme4_pwrss))
  term_order <- names(getME(r_lme4$model, "cnms"))
  fits <- list(
    lme4 = lme4_summary(r_lme4, family, call_lme4),
    lme4_tight = lme4_summary(r_lme4_t, family, sprintf(
      paste("%s with control = glmerControl(optimizer = \"nloptwrap\", optCtrl = list(%s),",
            "tolPwrss = %g)"),
      call_lme4, tight_txt(tight_lme4), tight_lme4_pwrss))
  )
  r_tmb <- list(elapsed = NA_real_, warnings = character(0))
  r_tmb_t <- r_tmb
  if (tmb) {
    r_tmb <- run_tmb(f, d, family, link, .ref_weights, glmmTMBControl())
    r_tmb_t <- run_tmb(f, d, family, link, .ref_weights,
                       glmmTMBControl(optimizer = optim, optArgs = list(method = "BFGS"),
                                      optCtrl = tight_tmb))
    fits$glmmTMB <- tmb_summary(r_tmb, family, call_tmb, term_order)
    fits$glmmTMB_tight <- tmb_summary(r_tmb_t, family, sprintf(
      paste("%s with control = glmmTMBControl(optimizer = optim, optArgs = list(method =",
            "\"BFGS\"), optCtrl = list(%s))"), call_tmb, tight_txt(tight_tmb)),
      term_order)
  }

  own_fits <- NULL
  if (own) {
    # the model frame of the lme4 fit: X, response, weights, offset and the grouping factor
    m <- r_lme4$model
    X <- getME(m, "X")
    stopifnot(length(term_order) == 1, identical(getME(m, "cnms")[[1]], "(Intercept)"))
    g <- getME(m, "flist")[[1]]
    y <- getME(m, "y")
    wt <- m@resp$weights  # binomial: the numbers of trials
    off <- getME(m, "offset")
    # started from lme4's default fit (theta: the SD of u's effect; sigma^2: the dispersion)
    tm <- fits$lme4
    start <- c(unlist(tm$fixef), log(tm$theta[[1]]))
    if (has_dispersion(family)) start <- c(start, log(tm$dispersion))
    if (family == "nbinom2") start <- c(start, log(tm$shape))
    own_fits <- list(
      fisher = own_fit("fisher", X, y, wt, off, g, family, link, start, term_order),
      exact = own_fit("exact", X, y, wt, off, g, family, link, start, term_order)
    )
    own_fits$exact_minus_fisher_logLik <- own_fits$exact$logLik - own_fits$fisher$logLik
  }

  lls <- vapply(fits, function(z) if (isTRUE(z$loglik_comparable)) z$logLik else NA_real_, 0)
  best <- if (all(is.na(lls))) {
    stopifnot(own)
    "own_exact"
  } else {
    names(which.max(lls))
  }
  ll_reported <- vapply(fits, `[[`, 0, "logLik")
  res <- list(
    case = case,
    formula = formula,
    formula_glamm = formula_glamm,
    names_glamm = if (is.null(names_glamm)) NULL else as.list(names_glamm),
    dataset = dataset,
    family = family,
    family_glamm = family_glamm,
    link = link,
    weights = weights_col,
    packages = packages,
    note = note,
    best = best,
    higher_reported_logLik = names(which.max(ll_reported)),
    logLik_reported = as.list(ll_reported),
    fits = fits,
    own = own_fits
  )
  write_json(res, file.path(ref_dir, paste0(case, ".json")), auto_unbox = TRUE, pretty = TRUE,
             digits = NA, null = "null", na = "null")
  tmb_ll <- function(k) if (is.null(fits[[k]])) NA_real_ else fits[[k]]$logLik
  cat(sprintf("%-22s lme4 %.10g / %.10g  glmmTMB %.10g / %.10g%s  best %s  (%.2fs, %.2fs)\n",
              case, fits$lme4$logLik, fits$lme4_tight$logLik, tmb_ll("glmmTMB"),
              tmb_ll("glmmTMB_tight"),
              if (own) sprintf("  own fisher %.10g exact %.10g", own_fits$fisher$logLik,
                               own_fits$exact$logLik) else "",
              best, r_lme4$elapsed, r_tmb$elapsed))
  w <- unique(c(r_lme4$warnings, r_lme4_t$warnings, r_tmb$warnings, r_tmb_t$warnings))
  if (length(w)) cat("   warnings:", paste(w, collapse = " | "), "\n")
  invisible(res)
}

cbind_f <- "cbind(incidence, size - incidence) ~ period + (1 | herd)"
fit_case("cbpp_logit", cbind_f, "cbpp", "binomial", "logit", "binomial", own = TRUE)
fit_case("cbpp_probit", cbind_f, "cbpp", "binomial", "probit", "binomial", own = TRUE)
fit_case("cbpp_cloglog", cbind_f, "cbpp", "binomial", "cloglog", "binomial", own = TRUE)
fit_case("cbpp_prop_logit", "incidence / size ~ period + (1 | herd)", "cbpp", "binomial",
         "logit", "binomial", weights_col = "size", own = TRUE,
         note = "proportions with weights = trials: the same likelihood as cbpp_logit")
fit_case("grouseticks_pois", "TICKS ~ YEAR + scale(HEIGHT) + (1 | BROOD) + (1 | LOCATION)",
         "grouseticks", "poisson", "log", "poisson")
fit_case("simpois_offset", "y_pois ~ x + offset(log(expo)) + (1 | g)", "sim_glmm", "poisson",
         "log", "poisson", formula_glamm = "y_pois ~ x + offset(np.log(expo)) + (1 | g)",
         own = TRUE)
fit_case("simgamma_log", "y_gamma ~ x + (1 | g)", "sim_glmm", "Gamma", "log", "Gamma", own = TRUE)
fit_case("simig_log", "y_ig ~ x + (1 | g)", "sim_glmm", "inverse.gaussian", "log",
         "inverse_gaussian", own = TRUE, tmb = FALSE,
         note = "glmmTMB 1.1.5 has no inverse.gaussian family: its fits are absent")
fit_case("simgauss_log", "y_gauss ~ x + (1 | g)", "sim_glmm", "gaussian", "log", "gaussian",
         own = TRUE)
fit_case("simnb", "y_nb ~ x + (1 | g)", "sim_glmm", "nbinom2", "log", "negative_binomial",
         own = TRUE, note = "lme4: glmer.nb; glmmTMB: nbinom2. shape = NB2 size theta")
fit_case("verbagg_r2", "r2 ~ btype + (1 | id)", "VerbAgg", "binomial", "logit", "binomial",
         own = TRUE, note = "binary response stored as a factor with levels N, Y (N = failure)")
fit_case("simbin_slope_crossed", "y ~ x + (x | subj) + (1 | item)", "sim_binslope", "binomial",
         "logit", "binomial")
