# Reference fixtures for tests/test_smooth_splines.py: mgcv's raw 1-D spline bases
# "cr", "cs" and "ps" as smooth.construct() returns them (before smoothCon's identifiability
# constraints and penalty rescaling), and Predict.matrix() at new covariate values.
#
# Run from the repository root:   Rscript tests/reference/smooths/splines/make_splines.R
#
# Writes tests/reference/smooths/splines/<case>.json, one per (basis, data set, k, ...):
#   call            the R call that built the basis
#   basis, data, k_requested, m_requested, knots_supplied   the inputs (k_requested = -1 is
#                   mgcv's default; knots_supplied is null when mgcv places the knots)
#   x, xnew         the covariate values the basis was built from / predicted at
#   warnings        warnings smooth.construct() gave
#   bs_dim, rank, null_space_dim, knots (sm$xp for cr/cs, sm$knots for ps),
#   F (cr/cs only: sm$F as the nk x nk matrix mgcv stores, column-major), X, S,
#   S_eigenvalues   eigen(S, symmetric = TRUE)$values (decreasing)
#   Xnew            Predict.matrix(sm, data.frame(x = xnew))
#   m               (ps only) sm$m, the B-spline and difference orders used
# For "cs" X and Xnew are not written: smooth.construct.cs.smooth.spec builds them with the same
# code as "cr", so they are identical to those of the matching cr_* case (checked here). The
# "cs" S depends on a rotation within the cr penalty's null space that mgcv leaves to rounding
# error, so the tests compare only what it determines (see tests/test_smooth_splines.py).
# Matrices are written as arrays of rows. Inputs (x, xnew, knots_supplied, knots) are written
# with the shortest of 15 or 17 significant digits that reads back to the same double, so the
# tests see R's exact inputs; computed results with 13 significant digits (far below the
# tests' 1e-10 tolerance, and it keeps the files small). The covariates are generated here
# once (set.seed) and stored; the tests never need R.

suppressPackageStartupMessages({
  library(mgcv)
  library(jsonlite)
})

out_dir <- file.path("tests", "reference", "smooths", "splines")
if (!dir.exists(out_dir)) stop("run this script from the repository root")

# ------------------------------------------------------------------------------ number output
num_str <- function(v, digits = NA) {
  v <- as.double(v)
  if (!is.na(digits)) return(trimws(formatC(v, digits = digits, format = "g")))
  s <- trimws(formatC(v, digits = 15, format = "g"))
  redo <- as.double(s) != v
  s[redo] <- trimws(formatC(v[redo], digits = 17, format = "g"))
  stopifnot(all(as.double(s) == v))
  s
}
json_vec <- function(v, digits = NA) {
  structure(paste0("[", paste(num_str(v, digits), collapse = ","), "]"), class = "json")
}
json_mat <- function(M, digits = 13) {
  M <- as.matrix(M)
  rows <- vapply(seq_len(nrow(M)),
                 function(i) paste0("[", paste(num_str(M[i, ], digits), collapse = ","), "]"),
                 character(1))
  structure(paste0("[", paste(rows, collapse = ",\n"), "]"), class = "json")
}

# ---------------------------------------------------------------------------------- data sets
set.seed(20240611)
data_sets <- list(
  unif400 = runif(400),
  ties = rep(0:9, 18),
  skew = exp(rnorm(200))
)

# prediction points: below the data, inside (including the data extremes), above the data,
# and the knots (outside = FALSE: only points inside the data range and the inner knots)
new_points <- function(x, extra = numeric(0), outside = TRUE) {
  lo <- min(x); hi <- max(x); r <- hi - lo
  inside <- c(seq(lo, hi, length.out = 13), extra[extra >= lo & extra <= hi])
  if (!outside) return(sort(unique(inside)))
  sort(unique(c(lo - 0.2 * r, lo - 0.02 * r, lo - 0.0004 * r, inside,
                hi + 0.0004 * r, hi + 0.02 * r, hi + 0.3 * r, extra)))
}

# -------------------------------------------------------------------------------------- cases
make_case <- function(name, basis, data, k, m = NA, knots = NULL, outside = TRUE) {
  x <- data_sets[[data]]
  spec_call <- if (basis == "ps" && !all(is.na(m))) {
    sprintf('s(x, bs = "%s", k = %d, m = c(%s))', basis, k, paste(m, collapse = ", "))
  } else sprintf('s(x, bs = "%s", k = %d)', basis, k)
  spec <- eval(parse(text = spec_call))
  warns <- character(0)
  sm <- withCallingHandlers(
    smooth.construct(spec, data.frame(x = x), if (is.null(knots)) NULL else list(x = knots)),
    warning = function(w) {
      warns <<- c(warns, conditionMessage(w))
      invokeRestart("muffleWarning")
    })
  kn <- if (basis == "ps") sm$knots else sm$xp
  xnew <- new_points(x, kn, outside)
  Xnew <- Predict.matrix(sm, data.frame(x = xnew))
  S <- sm$S[[1]]
  res <- list(
    call = sprintf("smooth.construct(%s, data.frame(x = x), %s)", spec_call,
                   if (is.null(knots)) "NULL" else "list(x = knots)"),
    basis = basis, data = data, k_requested = k,
    m_requested = if (all(is.na(m))) NULL else json_vec(m),
    knots_supplied = if (is.null(knots)) NULL else json_vec(knots),
    mgcv_version = as.character(packageVersion("mgcv")),
    R_version = paste(R.version$major, R.version$minor, sep = "."),
    warnings = as.list(warns),
    bs_dim = sm$bs.dim, rank = sm$rank, null_space_dim = sm$null.space.dim,
    knots = json_vec(kn),
    F = if (basis == "ps") NULL else json_mat(matrix(sm$F, sm$bs.dim, sm$bs.dim)),
    x = json_vec(x), xnew = json_vec(xnew),
    X = if (basis == "cs") NULL else json_mat(sm$X), S = json_mat(S),
    S_eigenvalues = json_vec(eigen(S, symmetric = TRUE, only.values = TRUE)$values, 13),
    Xnew = if (basis == "cs") NULL else json_mat(Xnew)
  )
  if (basis == "cs") {  # cs shares cr's design matrices
    cr_spec <- eval(parse(text = sub('"cs"', '"cr"', spec_call)))
    cr <- suppressWarnings(smooth.construct(cr_spec, data.frame(x = x),
                                            if (is.null(knots)) NULL else list(x = knots)))
    stopifnot(identical(cr$X, sm$X), identical(Predict.matrix(cr, data.frame(x = xnew)), Xnew))
  }
  if (basis == "ps") res$m <- json_vec(sm$m)
  writeLines(toJSON(res, auto_unbox = TRUE, pretty = TRUE, json_verbatim = TRUE, null = "null"),
             file.path(out_dir, paste0(name, ".json")))
  cat(name, ": k =", sm$bs.dim, " warnings:", length(warns), "\n")
}

for (basis in c("cr", "cs", "ps")) {
  make_case(paste0(basis, "_unif400_k10"), basis, "unif400", 10)
  make_case(paste0(basis, "_unif400_k5"), basis, "unif400", 5)
  make_case(paste0(basis, "_ties_k5"), basis, "ties", 5)
  make_case(paste0(basis, "_skew_k8"), basis, "skew", 8)
}
# default k and the minimum k (k = 2 is raised to 3 with a warning)
make_case("cr_ties_kdefault", "cr", "ties", -1)
make_case("cr_ties_k2", "cr", "ties", 2)
make_case("cs_ties_k2", "cs", "ties", 2)
# supplied knots that do not span the data (the basis extrapolates linearly at the data)
make_case("cr_skew_knots", "cr", "skew", 6, knots = c(0.3, 0.6, 1, 1.5, 2.5, 4))
make_case("cs_skew_knots", "cs", "skew", 6, knots = c(0.3, 0.6, 1, 1.5, 2.5, 4))
# P-splines: default k, other orders, supplied knot range / full knot sequence, k above the
# number of unique values (warning)
make_case("ps_ties_kdefault", "ps", "ties", -1)
make_case("ps_skew_k8_m31", "ps", "skew", 8, m = c(3, 1))
make_case("ps_skew_k6_m13", "ps", "skew", 6, m = c(1, 3))
make_case("ps_ties_k4_m02", "ps", "ties", 4, m = c(0, 2))
make_case("ps_ties_k5_knotrange", "ps", "ties", 5, knots = c(-1, 10))
make_case("ps_ties_k5_knotseq", "ps", "ties", 5, knots = c(-3, -2, -1, 0, 4.5, 9, 10, 11, 12))
make_case("ps_ties_k12", "ps", "ties", 12)
# degree-0 B-splines: Predict.matrix fails outside the basis interval, so only inside points
make_case("ps_ties_k5_m-11", "ps", "ties", 5, m = c(-1, 1), outside = FALSE)
