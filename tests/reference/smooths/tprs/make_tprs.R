# Reference thin plate regression spline bases for tests/test_smooth_tprs.py: mgcv's raw
# "tp" / "ts" basis (smooth.construct, before smoothCon's identifiability constraint and
# penalty rescaling) and its Predict.matrix at new covariate values.
#
# Run from the repository root:   Rscript tests/reference/smooths/tprs/make_tprs.R
#
# Writes tests/reference/smooths/tprs/<case>.json, one file per case, holding
#   call        the smooth.construct call (R code; the data are those stored here)
#   mgcv        mgcv version
#   x, x_new    covariates (rows = observations, one column per covariate) for the basis
#               and for Predict.matrix; the tests read these, so no RNG agreement is needed
#   k, m, d, null_space_dim, rank, max_knots, shrink   (m: mgcv's p.order after defaulting)
#   shift       mgcv's sm$shift (covariate means)
#   knots       sm$Xu, the (centred, sorted) unique knot locations
#   X, S        sm$X (n x k) and sm$S[[1]] (k x k)
#   UZ          sm$UZ ((n_knots + M) x k)
#   P           Predict.matrix(sm, x_new)
# Matrices are stored as arrays of rows. Numbers are written with the shortest of 15 or 17
# significant digits that reads back to the same double.

suppressPackageStartupMessages({
  library(mgcv)
  library(jsonlite)
})

out_dir <- file.path("tests", "reference", "smooths", "tprs")
if (!dir.exists(out_dir)) stop("run this script from the repository root")

num_str <- function(x) {
  s <- trimws(formatC(x, digits = 15, format = "g"))
  redo <- as.numeric(s) != x
  s[redo] <- trimws(formatC(x[redo], digits = 17, format = "g"))
  s
}
# JSON text for a numeric vector or matrix (matrix: array of rows), exact doubles
jnum <- function(x) {
  if (is.matrix(x)) {
    rows <- vapply(seq_len(nrow(x)), function(i)
      paste0("[", paste(num_str(x[i, ]), collapse = ","), "]"), "")
    txt <- paste0("[", paste(rows, collapse = ","), "]")
  } else if (length(x) == 1) {
    txt <- num_str(x)
  } else {
    txt <- paste0("[", paste(num_str(x), collapse = ","), "]")
  }
  structure(txt, class = "json")
}

cases <- list()
add_case <- function(name, call, dat, newdat, note = "") {
  cases[[name]] <<- list(name = name, call = call, dat = dat, newdat = newdat, note = note)
}

# ---------------------------------------------------------------------------- data
set.seed(20240611)
u400 <- data.frame(x = runif(400))
u100 <- data.frame(x = runif(100))
u300 <- data.frame(x = runif(300))
new1 <- data.frame(x = c(seq(-0.2, 1.2, length.out = 21), u400$x[c(1, 7, 100)]))
new1_100 <- data.frame(x = c(seq(-0.2, 1.2, length.out = 21), u100$x[c(1, 7, 50)]))
new1_300 <- data.frame(x = c(seq(-0.2, 1.2, length.out = 21), u300$x[c(1, 7, 50)]))
# sleepstudy's Days: 0..9, each 18 times (n = 180), as lme4::sleepstudy$Days
days <- data.frame(x = rep(0:9, times = 18))
new_days <- data.frame(x = c(-1, 0, 0.5, 2, 4.5, 7.25, 9, 10.5))
xz200 <- data.frame(x = runif(200), z = runif(200))
xz60 <- data.frame(x = runif(60), z = runif(60))
xz150 <- data.frame(x = runif(150), z = 2 * runif(150) - 1)
new2 <- function(d) data.frame(x = c(runif(12, -0.2, 1.2), d$x[1:3]),
                               z = c(runif(12, min(d$z) - 0.2, max(d$z) + 0.2), d$z[1:3]))
xyz150 <- data.frame(x = runif(150), y = runif(150), z = runif(150))
new3 <- data.frame(x = c(runif(10, -0.1, 1.1), xyz150$x[1:2]),
                   y = c(runif(10, -0.1, 1.1), xyz150$y[1:2]),
                   z = c(runif(10, -0.1, 1.1), xyz150$z[1:2]))

# ---------------------------------------------------------------------------- cases
add_case("unif_k10", "smooth.construct(s(x, k = 10), dat, NULL)", u400, new1)
add_case("unif_k5", "smooth.construct(s(x, k = 5), dat, NULL)", u400, new1)
add_case("unif_default_k", "smooth.construct(s(x), dat, NULL)", u100, new1_100)
add_case("unif_m1_k8", "smooth.construct(s(x, k = 8, m = 1), dat, NULL)", u100, new1_100)
add_case("unif_m3_k12", "smooth.construct(s(x, k = 12, m = 3), dat, NULL)", u100, new1_100)
add_case("unif_ts_k10", "smooth.construct(s(x, bs = \"ts\", k = 10), dat, NULL)", u100, new1_100)
add_case("days_k5", "smooth.construct(s(x, k = 5), dat, NULL)", days, new_days,
         "x = sleepstudy Days (0..9, 18 times each)")
add_case("days_k10", "smooth.construct(s(x, k = 10), dat, NULL)", days, new_days,
         "x = sleepstudy Days; k = number of unique values: no eigen step (mgcv's pure-knot branch)")
add_case("unif_maxknots60_k10",
         "smooth.construct(s(x, k = 10, xt = list(max.knots = 60)), dat, NULL)", u300, new1_300,
         "300 unique values, max.knots = 60: knots are mgcv's random subsample (seed 1)")
add_case("xz_k20", "smooth.construct(s(x, z, k = 20), dat, NULL)", xz200, new2(xz200))
add_case("xz_default_k", "smooth.construct(s(x, z), dat, NULL)", xz60, new2(xz60))
add_case("xz_m3_k15", "smooth.construct(s(x, z, k = 15, m = 3), dat, NULL)", xz150, new2(xz150))
add_case("xz_ts_k15", "smooth.construct(s(x, z, bs = \"ts\", k = 15), dat, NULL)", xz150, new2(xz150))
add_case("xz_maxknots50_k15",
         "smooth.construct(s(x, z, k = 15, xt = list(max.knots = 50)), dat, NULL)", xz150,
         new2(xz150), "150 unique rows, max.knots = 50: knots are mgcv's random subsample (seed 1)")
add_case("xyz_k30", "smooth.construct(s(x, y, z, k = 30), dat, NULL)", xyz150, new3)

# ---------------------------------------------------------------------------- write
for (cs in cases) {
  dat <- cs$dat
  sm <- eval(parse(text = cs$call))
  P <- Predict.matrix(sm, cs$newdat)
  terms <- sm$term
  res <- list(
    case = cs$name,
    call = cs$call,
    note = cs$note,
    mgcv = as.character(packageVersion("mgcv")),
    terms = terms,
    d = sm$dim,
    k = sm$bs.dim,
    m = sm$p.order[1],
    null_space_dim = sm$null.space.dim,
    rank = sm$rank,
    max_knots = if (is.null(sm$xt$max.knots)) 2000 else sm$xt$max.knots,
    shrink = if (inherits(sm, "ts.smooth")) jnum(0.1) else NULL,
    shift = jnum(as.numeric(sm$shift)),
    x = jnum(as.matrix(dat[, terms, drop = FALSE])),
    x_new = jnum(as.matrix(cs$newdat[, terms, drop = FALSE])),
    knots = jnum(sm$Xu),
    X = jnum(sm$X),
    S = jnum(sm$S[[1]]),
    UZ = jnum(sm$UZ),
    P = jnum(P)
  )
  res <- res[!vapply(res, is.null, TRUE)]
  writeLines(toJSON(res, auto_unbox = TRUE, json_verbatim = TRUE, digits = NA),
             file.path(out_dir, paste0(cs$name, ".json")))
  cat(cs$name, ": n =", nrow(dat), "k =", sm$bs.dim, "\n")
}

# ---------------------------------------------------------------------------- R internals
# mgcv draws its knot subsample with sample() under set.seed(1), after ordering the unique
# covariate rows by their as.character() representation (uniquecombs, d >= 2); glamm
# reproduces both. r_internals.json records R's answers for the tests.
samples <- list()
for (nk in list(c(10, 3), c(400, 60), c(70000, 5), c(1048579, 4), c(2, 2))) {
  set.seed(1)
  s <- sample(nk[1], nk[2])
  samples[[length(samples) + 1]] <- list(n = nk[1], size = nk[2], seed = 1, result = s)
}
set.seed(20240612)
vals <- c(0, 1, -1, 0.1, 1/3, -2/3, 1e-5, 1.5e-5, -1.5e-5, 123456, 1e5, 100000.5, 1e15, 1e16,
          123456789012, 0.000123, 100, 1e-300, 2^60, 99999.99999999999, 0.99999999999999999,
          0.9999999999999996, pi * 1e4, -pi * 1e-4, 1234567.1, 0.1 + 0.2, 1e-4, 0.0001234,
          12345678901234567, 1e22, 1e23, 5e-324, -0.5, 1/7 * 1e-3, 2.5e-8,
          runif(20) - 0.5, rnorm(10) * 10^sample(-6:6, 10, replace = TRUE))
chars <- list(values = jnum(vals), strings = as.character(vals))
writeLines(toJSON(list(mgcv = as.character(packageVersion("mgcv")),
                       r = paste(R.version$major, R.version$minor, sep = "."),
                       sample = samples, as_character = chars),
                  auto_unbox = TRUE, json_verbatim = TRUE, digits = NA),
           file.path(out_dir, "r_internals.json"))
cat("r_internals\n")
