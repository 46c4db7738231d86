# Reference fits for tests/test_galamm_families.py: one-factor models with free factor loadings
# (glamm.galamm) for every response family glamm has, checked against glmmTMB's reduced-rank
# covariance rr(0 + item | id, d = 1).
#
# Run from the repository root:   Rscript tests/reference/galamm_extra/make_galamm_extra.R
#
# Writes
#   tests/reference/galamm_extra/data/<dataset>.csv   simulated data exactly as fitted (header,
#                                                     no row names, factors as labels)
#   tests/reference/galamm_extra/data/datasets.json   per data set: column types (numeric,
#                                                     integer, factor) and factor levels in R's
#                                                     order
#   tests/reference/galamm_extra/ref/<case>.json      one model each: glmmTMB with its default
#                                                     settings (fits$glmmTMB), with tight
#                                                     optimizer settings (fits$glmmTMB_tight)
#                                                     and the better of the two polished by
#                                                     Newton steps (fits$glmmTMB_newton);
#                                                     for the inverse Gaussian (not in glmmTMB
#                                                     1.1.5) and, as a check of that code, for
#                                                     the Gamma and Gaussian-log cases also an
#                                                     independent plain-R Laplace fit (own);
#                                                     `best` names the fit the tests compare with
#
# The data are simulated here (fixed seed) and every model is fitted to the data read back from
# the CSV written here (typed by the same catalogue), so R and the Python tests see identical
# numbers. Numbers are written with the shortest of 15 or 17 significant digits that reads back
# to the same double.
#
# The model. Items j = 1..k measure one latent variable per id: eta_ij = x_ij' beta +
# lambda_j eta_i, eta_i ~ N(0, sd^2). galamm (and glamm.galamm with lambda_ = [[1], [nan],
# ...]) fixes lambda_1 = 1 and estimates sd; glmmTMB's rr(0 + item | id, d = 1) writes the
# item effects of id i as L b_i with b_i ~ N(0, 1) and all k loadings L free. Both describe
# the random-effects covariance sd^2 lambda lambda' (rank one), so the Laplace log-likelihoods
# are the same function: lambda_j = L_j / L_1 and sd = |L_1|. (Both put the observed Hessian of
# the conditional log-density into the Laplace log-determinant.)
#
# Recorded per fit: logLik (full, all constants), fixef and fixef_se (the fixed effects are
# the same parameters in both parametrizations, so their standard errors are comparable; those
# of the loadings and the SD are not given here), rr's loadings L (`rr_loadings`), the ratios
# L / L_1 (`loadings`, galamm's), sd = |L_1| (`latent_sd`), the dispersion (Gamma, Gaussian,
# inverse Gaussian: glmmTMB's sigma^2) or the negative binomial shape (NB2 size, glmmTMB's
# sigma), convergence information and the elapsed time of the fitting call.
#
# best: the fit with the highest log-likelihood among the three glmmTMB fits; for the inverse
# Gaussian own$exact (the only fit).

suppressPackageStartupMessages({
  library(glmmTMB)
  library(jsonlite)
})

out_dir <- file.path("tests", "reference", "galamm_extra")
if (!dir.exists(out_dir)) stop("run this script from the repository root")
data_dir <- file.path(out_dir, "data")
ref_dir <- file.path(out_dir, "ref")
dir.create(data_dir, showWarnings = FALSE, recursive = TRUE)
dir.create(ref_dir, showWarnings = FALSE, recursive = TRUE)

pkg_version <- function(p) as.character(packageVersion(p))
packages <- list(glmmTMB = pkg_version("glmmTMB"), TMB = pkg_version("TMB"),
                 Matrix = pkg_version("Matrix"), R = as.character(getRversion()))

# ---------------------------------------------------------------------------- data I/O

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
      }
    )
  }
  raw
}

# ---------------------------------------------------------------------------- simulation

set.seed(20261201)

# Inverse Gaussian draws with mean mu and dispersion phi (variance phi mu^3), by the
# transformation of a chi-square(1) draw with an acceptance step (Michael, Schucany and Haas,
# 1976).
rinvgauss_mu_phi <- function(mu, phi) {
  lambda <- 1 / phi
  v <- rnorm(length(mu))^2
  root <- mu + mu^2 * v / (2 * lambda) -
    mu / (2 * lambda) * sqrt(4 * mu * lambda * v + mu^2 * v^2)
  ifelse(runif(length(mu)) <= mu / (mu + root), root, mu^2 / root)
}

# Long data: n_id ids times the items, id and item as factors (items in the order i1, i2, ...).
item_frame <- function(n_id, n_item) {
  d <- expand.grid(item = paste0("i", seq_len(n_item)), id = sprintf("p%03d", seq_len(n_id)),
                   stringsAsFactors = FALSE)
  data.frame(id = factor(d$id, levels = sprintf("p%03d", seq_len(n_id))),
             item = factor(d$item, levels = paste0("i", seq_len(n_item))))
}

# The linear predictor of one response: item intercepts beta, loadings lambda (first 1) and a
# latent variable with SD sd, drawn afresh for each response.
linpred <- function(d, beta, lambda, sd) {
  eta_id <- rnorm(nlevels(d$id), sd = sd)
  j <- as.integer(d$item)
  beta[j] + lambda[j] * eta_id[as.integer(d$id)]
}

d3 <- item_frame(300, 3)
n3 <- nrow(d3)
d3$expo <- round(runif(n3, 0.5, 3), 3)
d3$trials <- sample(2:10, n3, replace = TRUE)
d3$y_bin <- rbinom(n3, 1, plogis(linpred(d3, c(0.3, -0.5, 0.8), c(1, 0.6, 1.5), 1.2)))
d3$y_probit <- rbinom(n3, 1, pnorm(linpred(d3, c(0.2, -0.3, 0.5), c(1, 0.8, 1.4), 0.9)))
d3$succ <- rbinom(n3, d3$trials, plogis(linpred(d3, c(-0.5, 0, 0.5), c(1, 0.5, 1.2), 0.8)))
d3$y_pois <- rpois(n3, exp(linpred(d3, c(1, 0.5, 1.5), c(1, 0.7, 1.3), 0.5)))
d3$y_poff <- rpois(n3, d3$expo * exp(linpred(d3, c(0.2, -0.4, 0.6), c(1, 1.5, 0.8), 0.6)))
d3$y_nb <- rnbinom(n3, size = 3, mu = exp(linpred(d3, c(1, 1.5, 0.5), c(1, 1.4, 0.6), 0.6)))
d3$y_gamma <- rgamma(n3, shape = 4) / 4 * exp(linpred(d3, c(0.5, 1, 1.5), c(1, 0.8, 1.2), 0.5))
d3$y_gausslog <- rnorm(n3, exp(linpred(d3, c(1.2, 1.5, 1), c(1, 0.8, 1.2), 0.4)), 0.3)
d3$y_ig <- rinvgauss_mu_phi(exp(linpred(d3, c(0.7, 0.3, 1), c(1, 1.3, 0.7), 0.5)), 0.2)
for (nm in c("y_bin", "y_probit", "succ", "y_pois", "y_poff", "y_nb"))
  d3[[nm]] <- as.integer(d3[[nm]])
stopifnot(all(d3$y_gamma > 0), all(d3$y_gausslog > 0), all(d3$y_ig > 0))

d5 <- item_frame(300, 5)
n5 <- nrow(d5)
d5$x <- round(rnorm(n5), 4)
d5$y <- as.integer(rbinom(n5, 1, plogis(
  linpred(d5, c(0.5, -0.3, 0, 1, -0.8), c(1, 0.8, 1.2, 0.5, 1.5), 1) + 0.6 * d5$x)))

sim_src <- sprintf("simulated by make_galamm_extra.R (set.seed(20261201), R %s)", getRversion())
write_dataset(d3, "sim_items3", sim_src,
              note = paste("300 ids x 3 items; one response column per family, each with its",
                           "own latent variable: y_bin (logit), y_probit, succ of trials",
                           "(logit), y_pois, y_poff (offset log(expo)), y_nb (NB2, size 3),",
                           "y_gamma (shape 4), y_gausslog (SD 0.3), y_ig (dispersion 0.2)"))
write_dataset(d5, "sim_items5", sim_src,
              note = "300 ids x 5 items and a row covariate x; binary y (logit)")
write_json(catalogue, file.path(data_dir, "datasets.json"), auto_unbox = TRUE, pretty = TRUE,
           digits = NA, null = "null")

# ---------------------------------------------------------------------------- glmmTMB fits

has_dispersion <- function(family) family %in% c("Gamma", "gaussian", "inverse.gaussian")

tmb_family <- function(family, link) {
  switch(family,
         nbinom2 = nbinom2(link = link),
         binomial = binomial(link = link),
         poisson = poisson(link = link),
         Gamma = Gamma(link = link),
         gaussian = gaussian(link = link),
         stop("no glmmTMB family ", family))
}

run_tmb <- function(f, d, family, link, control) {
  warns <- character(0)
  msgs <- character(0)
  t0 <- proc.time()[["elapsed"]]
  m <- withCallingHandlers(
    glmmTMB(f, data = d, family = tmb_family(family, link), control = control),
    warning = function(w) {
      warns <<- c(warns, conditionMessage(w))
      invokeRestart("muffleWarning")
    },
    message = function(m) {
      msgs <- c(msgs, conditionMessage(m))
      invokeRestart("muffleMessage")
    })
  list(model = m, elapsed = proc.time()[["elapsed"]] - t0, warnings = warns, messages = msgs)
}

tmb_summary <- function(run, family, call, items) {
  m <- run$model
  L <- m$obj$env$report(m$fit$parfull)$fact_load[[1]]
  stopifnot(ncol(L) == 1, nrow(L) == length(items))
  sig <- sigma(m)
  ll <- logLik(m)
  fe <- fixef(m)$cond
  V <- vcov(m)$cond
  list(
    package = "glmmTMB",
    call = call,
    warnings = I(run$warnings),
    messages = I(run$messages),
    convergence = m$fit$convergence,
    optimizer_message = if (is.null(m$fit$message)) NA_character_ else m$fit$message,
    max_abs_gradient = max(abs(m$obj$gr(m$fit$par))),
    pdHess = m$sdr$pdHess,
    nobs = nobs(m),
    ngrps = as.list(vapply(m$modelInfo$reTrms$cond$flist, nlevels, 1L)),
    fixef = as.list(fe),
    fixef_se = as.list(setNames(sqrt(diag(V)), names(fe))),
    rr_loadings = as.list(setNames(L[, 1], items)),
    loadings = as.list(setNames(L[, 1] / L[1, 1], items)),
    latent_sd = abs(L[1, 1]),
    dispersion = if (has_dispersion(family)) sig^2 else if (family == "nbinom2") NULL else 1,
    shape = if (family == "nbinom2") sig else NULL,
    logLik = as.numeric(ll),
    logLik_df = attr(ll, "df"),
    timing = list(elapsed_s = run$elapsed, what = "elapsed seconds of the fitting call")
  )
}

tight_tmb <- list(iter.max = 1e4, eval.max = 1e4, rel.tol = 1e-14)

# Newton steps on glmmTMB's own objective (TMB's Laplace -log L of the fixed parameters, with
# its exact gradient and optimHess' Hessian of it), started from the better of the two fits:
# nlminb stops at gradients of 1e-5 to 1e-3 here (or reports "singular convergence" without
# moving), which leaves the loadings uncertain in the fifth digit. Steps are taken while they
# lower the objective.
tmb_newton <- function(run, family, call, items) {
  m <- run$model
  obj <- m$obj
  t0 <- proc.time()[["elapsed"]]
  par <- m$fit$par
  f0 <- obj$fn(par)
  steps <- 0
  for (k in 1:20) {
    g <- as.vector(obj$gr(par))
    H <- optimHess(par, obj$fn, obj$gr)
    new <- par - solve(H, g)
    f1 <- obj$fn(new)
    if (!is.finite(f1) || f1 > f0) break
    steps <- steps + 1
    done <- f0 - f1 < 1e-13 * abs(f0)
    par <- new
    f0 <- f1
    if (done) break
  }
  f0 <- obj$fn(par)   # leaves the inner modes (last.par) at par
  full <- obj$env$last.par
  L <- obj$env$report(full)$fact_load[[1]]
  H <- optimHess(par, obj$fn, obj$gr)
  V <- solve(H)
  is_beta <- names(par) == "beta"
  fe_names <- names(fixef(m)$cond)
  stopifnot(sum(is_beta) == length(fe_names))
  m_newton <- m
  m_newton$fit$par <- par   # sigma() reads the dispersion parameter (family-specific) there
  sig <- sigma(m_newton)
  stopifnot(abs(sig / sigma(m) - 1) < 1e-3)
  list(
    package = "glmmTMB",
    call = sprintf("%s, then Newton steps on m$obj (optimHess Hessian)", call),
    newton_steps = steps,
    max_abs_gradient = max(abs(obj$gr(par))),
    nobs = nobs(m),
    fixef = as.list(setNames(par[is_beta], fe_names)),
    fixef_se = as.list(setNames(sqrt(diag(V))[is_beta], fe_names)),
    rr_loadings = as.list(setNames(L[, 1], items)),
    loadings = as.list(setNames(L[, 1] / L[1, 1], items)),
    latent_sd = abs(L[1, 1]),
    dispersion = if (has_dispersion(family)) sig^2 else if (family == "nbinom2") NULL else 1,
    shape = if (family == "nbinom2") sig else NULL,
    logLik = -f0,
    timing = list(elapsed_s = proc.time()[["elapsed"]] - t0,
                  what = "elapsed seconds of the Newton steps alone")
  )
}

# ---------------------------------------------------------------------------- own Laplace fits
# A plain implementation of the Laplace approximation for the one-factor model, written for
# these references only (glmmTMB 1.1.5 has no inverse Gaussian family). With b_i ~ N(0, 1) per
# id and eta = X beta + offset + sd * lambda[item] * b_id, the integral over b_i is
# one-dimensional: its mode b_i* maximizes h_i(b) = sum_rows log p(y | eta) - b^2 / 2 (steps
# with the larger of the observed and the expected information, and step halving), and
#   log L_i = h_i(b_i*) - log(1 + sd^2 sum_rows lambda^2 w) / 2
# with w the observed -d^2 log p / d eta^2 (as glmmTMB and glamm's default). log p holds every
# normalizing constant. (beta, log sd, the free loadings, log phi) are found by nlminb from
# a start and polished by Newton steps with finite-difference derivatives. Checked on the Gamma
# and Gaussian-log cases against glmmTMB (recorded as own$exact there).

own_family <- function(family) {
  switch(family,
         Gamma = list(
           ll = function(y, mu, par) {
             k <- 1 / par
             k * log(k * y / mu) - k * y / mu - log(y) - lgamma(k)
           },
           l1 = function(y, mu, par) (y - mu) / (par * mu^2),
           l2 = function(y, mu, par) (mu - 2 * y) / (par * mu^3),
           var = function(mu, par) par * mu^2),
         inverse.gaussian = list(
           ll = function(y, mu, par) -0.5 * log(2 * pi * par * y^3) -
             (y - mu)^2 / (2 * par * mu^2 * y),
           l1 = function(y, mu, par) (y - mu) / (par * mu^3),
           l2 = function(y, mu, par) (2 * mu - 3 * y) / (par * mu^4),
           var = function(mu, par) par * mu^3),
         gaussian = list(
           ll = function(y, mu, par) -0.5 * log(2 * pi * par) - (y - mu)^2 / (2 * par),
           l1 = function(y, mu, par) (y - mu) / par,
           l2 = function(y, mu, par) -1 / par + 0 * y,
           var = function(mu, par) par + 0 * mu),
         stop("own_family: ", family))
}

# -log L; pars = (beta, log sd, lambda_2..lambda_k, log phi); log link.
own_negloglik <- function(pars, X, y, item, g, fam) {
  p <- ncol(X)
  k <- nlevels(item)
  beta <- pars[1:p]
  s <- exp(pars[p + 1])
  lam <- c(1, pars[p + 1 + seq_len(k - 1)])
  phi <- exp(pars[p + k + 1])
  gi <- as.integer(g)
  z <- s * lam[as.integer(item)]          # the row's multiplier of b_id
  eta0 <- drop(X %*% beta)
  ng <- nlevels(g)
  b <- numeric(ng)
  h_of <- function(b) {
    mu <- exp(eta0 + z * b[gi])
    rowsum(fam$ll(y, mu, phi), gi, reorder = TRUE)[, 1] - b^2 / 2
  }
  h <- h_of(b)
  for (iter in 1:200) {
    mu <- exp(eta0 + z * b[gi])
    l1 <- fam$l1(y, mu, phi)
    score <- rowsum(z * l1 * mu, gi, reorder = TRUE)[, 1] - b
    fisher <- rowsum(z^2 * mu^2 / fam$var(mu, phi), gi, reorder = TRUE)[, 1]
    observed <- rowsum(-z^2 * (fam$l2(y, mu, phi) * mu^2 + l1 * mu), gi, reorder = TRUE)[, 1]
    # Newton where the observed information exceeds the expected, else Fisher scoring: a
    # Fisher step overshoots by the ratio of the two, and diverges where it exceeds 2 (inverse
    # Gaussian groups with large responses)
    step <- score / (pmax(fisher, observed) + 1)
    t <- rep(1, ng)
    repeat {
      h_new <- h_of(b + t * step)
      bad <- !is.finite(h_new) | h_new < h - 1e-12 * abs(h)
      if (!any(bad) || all(t < 1e-10)) break
      t[bad] <- t[bad] / 2
    }
    b <- b + t * step
    h <- h_new
    if (max(abs(t * step)) < 1e-13) break
  }
  mu <- exp(eta0 + z * b[gi])
  # observed information in eta for the log link: -(l2 mu^2 + l1 mu)
  w <- -(fam$l2(y, mu, phi) * mu^2 + fam$l1(y, mu, phi) * mu)
  H <- 1 + rowsum(z^2 * w, gi, reorder = TRUE)[, 1]
  if (any(H <= 0)) return(Inf)
  -sum(h - 0.5 * log(H))
}

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

num_gradient <- function(f, x, rel = 1e-5) {
  hs <- rel * pmax(1, abs(x))
  vapply(seq_along(x), function(i) {
    e <- replace(numeric(length(x)), i, hs[i])
    (f(x + e) - f(x - e)) / (2 * hs[i])
  }, 0)
}

own_fit <- function(formula_fixed, d, family, start) {
  fam <- own_family(family)
  mf <- model.frame(as.formula(formula_fixed), d)
  X <- model.matrix(as.formula(formula_fixed), mf)
  y <- model.response(mf)
  f <- function(p) own_negloglik(p, X, y, d$item, d$id, fam)
  t0 <- proc.time()[["elapsed"]]
  ctrl <- list(rel.tol = 1e-14, x.tol = 1e-12, iter.max = 1e4, eval.max = 1e4)
  opt <- nlminb(start, f, control = ctrl)
  for (r in 1:5) {  # restarted from its own result until it stops improving
    again <- nlminb(opt$par, f, control = ctrl)
    improved <- again$objective < opt$objective - 1e-13 * abs(opt$objective)
    if (again$objective <= opt$objective) opt <- again
    if (!improved) break
  }
  x <- opt$par
  fx <- opt$objective
  newton_steps <- 0
  for (r in 1:20) {
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
  elapsed <- proc.time()[["elapsed"]] - t0
  p <- ncol(X)
  k <- nlevels(d$item)
  V <- solve(num_hessian(f, x))
  list(
    package = "own",
    info = "exact",
    logLik = -fx,
    optimizer_message = opt$message,
    newton_steps = newton_steps,
    max_abs_gradient = max(abs(num_gradient(f, x))),
    nobs = length(y),
    fixef = as.list(setNames(x[1:p], colnames(X))),
    fixef_se = as.list(setNames(sqrt(diag(V)[1:p]), colnames(X))),
    loadings = as.list(setNames(c(1, x[p + 1 + seq_len(k - 1)]), levels(d$item))),
    latent_sd = exp(x[p + 1]),
    dispersion = exp(x[p + k + 1]),
    logLik_df = length(x),
    timing = list(elapsed_s = elapsed, what = "nlminb and Newton steps, elapsed seconds")
  )
}

# ---------------------------------------------------------------------------- cases

fit_case <- function(case, response, dataset, family, link, family_glamm, fixed = "0 + item",
                     formula_glamm = NULL, note = NULL, own = FALSE, tmb = TRUE) {
  d <- read_dataset(dataset)
  items <- levels(d$item)
  formula <- sprintf("%s ~ %s + rr(0 + item | id, d = 1)", response, fixed)
  call_tmb <- sprintf("glmmTMB(%s, data = %s, family = %s(link = \"%s\"))", formula, dataset,
                      family, link)
  tight_txt <- paste(names(tight_tmb), unlist(tight_tmb), sep = " = ", collapse = ", ")
  fits <- list()
  runs <- list()
  if (tmb) {
    runs$glmmTMB <- run_tmb(as.formula(formula), d, family, link, glmmTMBControl())
    runs$glmmTMB_tight <- run_tmb(as.formula(formula), d, family, link,
                                  glmmTMBControl(optCtrl = tight_tmb))
    fits$glmmTMB <- tmb_summary(runs$glmmTMB, family, call_tmb, items)
    fits$glmmTMB_tight <- tmb_summary(runs$glmmTMB_tight, family, sprintf(
      "%s with control = glmmTMBControl(optCtrl = list(%s))", call_tmb, tight_txt), items)
    better <- if (fits$glmmTMB_tight$logLik >= fits$glmmTMB$logLik) "glmmTMB_tight" else
      "glmmTMB"
    fits$glmmTMB_newton <- tmb_newton(runs[[better]], family, fits[[better]]$call, items)
  }
  own_fits <- NULL
  if (own) {
    # started from a GLM of the response on the fixed part (Gaussian-log: started at the
    # response clipped to positive values), sd 0.5, loadings 1
    d$.mu0 <- pmax(d[[response]], 0.01)
    g0 <- glm(as.formula(sprintf("%s ~ %s", response, fixed)), data = d,
              family = get(family)(link = link), mustart = .mu0)
    phi0 <- summary(g0)$dispersion
    start <- c(coef(g0), log(0.5), rep(1, length(items) - 1), log(phi0))
    own_fits <- list(exact = own_fit(sprintf("%s ~ %s", response, fixed), d, family, start))
  }
  lls <- vapply(fits, `[[`, 0, "logLik")
  best <- if (length(lls)) names(which.max(lls)) else "own_exact"
  res <- list(
    case = case,
    formula = formula,
    formula_glamm = if (is.null(formula_glamm))
      sprintf("%s ~ %s + (0 + f | id)", response, fixed) else formula_glamm,
    dataset = dataset,
    family = family,
    family_glamm = family_glamm,
    link = link,
    load_var = "item",
    factor = "f",
    items = I(items),
    packages = packages,
    note = note,
    best = best,
    logLik = as.list(c(lls, if (own) c(own_exact = own_fits$exact$logLik))),
    fits = fits,
    own = own_fits
  )
  write_json(res, file.path(ref_dir, paste0(case, ".json")), auto_unbox = TRUE, pretty = TRUE,
             digits = NA, null = "null", na = "null")
  ll <- function(k) if (is.null(fits[[k]])) NA_real_ else fits[[k]]$logLik
  el <- function(k) if (is.null(runs[[k]])) NA_real_ else runs[[k]]$elapsed
  cat(sprintf("%-16s glmmTMB %.10g (%.2fs) tight %.10g (%.2fs) newton %.10g%s  best %s\n",
              case, ll("glmmTMB"), el("glmmTMB"), ll("glmmTMB_tight"), el("glmmTMB_tight"),
              ll("glmmTMB_newton"),
              if (own) sprintf("  own %.10g", own_fits$exact$logLik) else "", best))
  w <- unique(unlist(lapply(runs, `[[`, "warnings")))
  if (length(w)) cat("   warnings:", paste(w, collapse = " | "), "\n")
  invisible(res)
}

fit_case("bin_logit", "y_bin", "sim_items3", "binomial", "logit", "binomial")
fit_case("bin_cbind", "cbind(succ, trials - succ)", "sim_items3", "binomial", "logit",
         "binomial", note = "successes out of trials (2 to 10)")
fit_case("bin_probit", "y_probit", "sim_items3", "binomial", "probit", "binomial")
fit_case("pois_log", "y_pois", "sim_items3", "poisson", "log", "poisson")
fit_case("pois_offset", "y_poff", "sim_items3", "poisson", "log", "poisson",
         fixed = "0 + item + offset(log(expo))",
         formula_glamm = "y_poff ~ 0 + item + offset(np.log(expo)) + (0 + f | id)")
fit_case("nbinom2_log", "y_nb", "sim_items3", "nbinom2", "log", "negative_binomial",
         note = "shape = NB2 size (glmmTMB's sigma)")
fit_case("gamma_log", "y_gamma", "sim_items3", "Gamma", "log", "Gamma", own = TRUE,
         note = "dispersion = 1 / shape (glmmTMB's sigma^2); own$exact checks the own code")
fit_case("gauss_log", "y_gausslog", "sim_items3", "gaussian", "log", "gaussian", own = TRUE,
         note = "dispersion = residual variance; own$exact checks the own code")
fit_case("ig_log", "y_ig", "sim_items3", "inverse.gaussian", "log", "inverse_gaussian",
         own = TRUE, tmb = FALSE,
         note = "glmmTMB 1.1.5 has no inverse.gaussian family: the own fit only")
fit_case("bin5_x", "y", "sim_items5", "binomial", "logit", "binomial", fixed = "0 + item + x",
         note = "5 items and a row covariate in the fixed part")
