# Reference fits for tests/test_lmer_extra.py: lme4 on standard data sets glamm was not
# developed against.
#
# Run from the repository root:   Rscript tests/reference/extra/make_extra.R
#
# Writes
#   tests/reference/extra/data/<dataset>.csv   the data exactly as fitted (header, no row names,
#                                              factors as labels, NA for missing)
#   tests/reference/extra/data/datasets.json   per data set: column types (numeric, integer,
#                                              factor, ordered) and factor levels in R's order
#   tests/reference/extra/ref/<case>.json      one lme4 fit each: the default fit, a refit with
#                                              tight optimizer settings (tight) and which of
#                                              the two is better (best); lme4's dropped
#                                              fixed-effects columns; the lmer call's elapsed
#                                              time (timing); glamm's spelling of the formula
#                                              (formula_glamm) and the names that follow from
#                                              it (names_glamm) where they differ from R's
#
# Every model is fitted to the data read back from the CSV written here (typed by the same
# catalogue), so R and the Python tests see identical numbers. Numbers are written with the
# shortest of 15 or 17 significant digits that reads back to the same double.

suppressPackageStartupMessages({
  library(lme4)
  library(nlme)
  library(jsonlite)
})

out_dir <- file.path("tests", "reference", "extra")
if (!dir.exists(out_dir)) stop("run this script from the repository root")
data_dir <- file.path(out_dir, "data")
ref_dir <- file.path(out_dir, "ref")
dir.create(data_dir, showWarnings = FALSE, recursive = TRUE)
dir.create(ref_dir, showWarnings = FALSE, recursive = TRUE)

pkg_version <- function(p) as.character(packageVersion(p))

# ---------------------------------------------------------------------------- data sets

get_data <- function(name, package) {
  env <- new.env()
  data(list = name, package = package, envir = env)
  d <- get(name, envir = env)
  # drop groupedData / other classes and their formula attributes: a plain data frame
  d <- data.frame(lapply(as.list(d), function(col) {
    attributes_keep <- c("levels", "class")
    a <- attributes(col)
    attributes(col) <- a[intersect(names(a), attributes_keep)]
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
    if (is.factor(col)) as.character(col)
    else if (is.integer(col)) as.character(col)
    else format_num(col)
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

nlme_src <- paste("nlme", pkg_version("nlme"))
lme4_src <- paste("lme4", pkg_version("lme4"))

write_dataset(get_data("Machines", "nlme"), "Machines", nlme_src)
write_dataset(get_data("Oats", "nlme"), "Oats", nlme_src)
write_dataset(get_data("ergoStool", "nlme"), "ergoStool", nlme_src)
write_dataset(get_data("Orthodont", "nlme"), "Orthodont", nlme_src)
write_dataset(get_data("Rail", "nlme"), "Rail", nlme_src)
write_dataset(get_data("cake", "lme4"), "cake", lme4_src)
write_dataset(get_data("ChickWeight", "datasets"), "ChickWeight",
              paste("datasets (R", getRversion(), ")"))
write_dataset(get_data("Penicillin", "lme4"), "Penicillin", lme4_src)

sleep <- get_data("sleepstudy", "lme4")
sleep_w <- sleep
sleep_w$w <- (1:180 %% 3) + 1
write_dataset(sleep_w, "sleepstudy_w", lme4_src,
              note = "lme4 sleepstudy plus prior weights w = (1:180 %% 3) + 1")
sleep_na <- sleep
sleep_na$Reaction[c(5, 50, 100)] <- NA
write_dataset(sleep_na, "sleepstudy_na", lme4_src,
              note = "lme4 sleepstudy with Reaction set to NA in rows 5, 50 and 100")

# Crossed design: a correlated intercept and slope for g (30 levels), an intercept for h
# (12 levels), n = 600.
sim_crossed <- local({
  set.seed(20240611)
  n <- 600
  ng <- 30
  nh <- 12
  g <- factor(sprintf("g%02d", rep(seq_len(ng), each = n / ng)), levels = sprintf("g%02d", seq_len(ng)))
  h <- factor(sprintf("h%02d", sample.int(nh, n, replace = TRUE)), levels = sprintf("h%02d", seq_len(nh)))
  x <- rnorm(n)
  sd_g <- c(1.0, 0.5)
  rho <- 0.4
  S <- diag(sd_g) %*% matrix(c(1, rho, rho, 1), 2) %*% diag(sd_g)
  b <- matrix(rnorm(2 * ng), ng, 2) %*% chol(S)
  c_h <- rnorm(nh, sd = 0.8)
  y <- 1 + 0.5 * x + b[as.integer(g), 1] + b[as.integer(g), 2] * x + c_h[as.integer(h)] +
    rnorm(n, sd = 1)
  stopifnot(all(table(h) > 0))
  data.frame(y = y, x = x, g = g, h = h)
})
write_dataset(sim_crossed, "sim_crossed",
              "simulated in make_extra.R (set.seed(20240611))",
              note = paste("y = 1 + 0.5 x + b0_g + b1_g x + c_h + e; sd(b0, b1) = (1, 0.5),",
                           "corr 0.4; sd(c) = 0.8; sd(e) = 1; x ~ N(0, 1); g: 20 rows per level;",
                           "h drawn uniformly"))

# ---------------------------------------------------------------------------- data sets, wave 2

datasets_src <- paste("datasets (R", getRversion(), ")")

write_dataset(get_data("Oxboys", "nlme"), "Oxboys", nlme_src)
write_dataset(get_data("CO2", "datasets"), "CO2", datasets_src,
              note = "Type (Quebec, Mississippi) and Treatment (nonchilled, chilled) have non-alphabetical level orders")
write_dataset(get_data("Pixel", "nlme"), "Pixel", nlme_src)
write_dataset(get_data("Dialyzer", "nlme"), "Dialyzer", nlme_src)
write_dataset(get_data("Dyestuff2", "lme4"), "Dyestuff2", lme4_src)
write_dataset(get_data("grouseticks", "lme4")[, c("TICKS", "BROOD", "HEIGHT", "YEAR", "LOCATION", "cHEIGHT")],
              "grouseticks", lme4_src, note = "lme4 grouseticks without the row-index column INDEX")

chick_int <- get_data("ChickWeight", "datasets")
chick_int$Chick <- as.integer(as.character(chick_int$Chick))
write_dataset(chick_int, "ChickWeight_int", datasets_src,
              note = "ChickWeight with Chick stored as an integer (1..50: numeric and text order differ)")

sleep_int_na <- sleep
sleep_int_na$Subject <- as.integer(as.character(sleep_int_na$Subject))
sleep_int_na$Subject[c(3, 40, 41, 177)] <- NA
sleep_int_na$Days[90] <- NA
write_dataset(sleep_int_na, "sleepstudy_int_na", lme4_src,
              note = "lme4 sleepstudy, Subject stored as an integer and NA in rows 3, 40, 41 and 177; Days NA in row 90")

ortho_na <- get_data("Orthodont", "nlme")
ortho_na$Subject[c(7, 60)] <- NA
write_dataset(ortho_na, "Orthodont_na", nlme_src,
              note = "nlme Orthodont with the (ordered factor) grouping column Subject NA in rows 7 and 60")

# A factor f with a non-alphabetical level order (low, mid, high) and a random intercept and
# f-effects per group g (40 levels named s1..s40, in numeric order, not text order); 4 rows per
# g x f cell, n = 480.
sim_factor <- local({
  set.seed(20240612)
  ng <- 40
  g <- factor(rep(sprintf("s%d", 1:ng), each = 12), levels = sprintf("s%d", 1:ng))
  f <- factor(rep(rep(c("low", "mid", "high"), each = 4), ng), levels = c("low", "mid", "high"))
  n <- length(g)
  x <- round(runif(n, 0.5, 3), 3)
  b0 <- rnorm(ng, sd = 1)
  # y_sing: a random intercept only (its fit with a random slope is singular)
  y_sing <- round(2 + 0.5 * x + b0[as.integer(g)] + rnorm(n, sd = 0.7), 4)
  x2 <- round(rnorm(n), 3)
  x3 <- x + x2
  z <- round(runif(n, 1, 10), 2)
  w <- sample(c(0.5, 1, 2, 4), n, replace = TRUE)
  sd_b <- c(1, 0.6, 0.8)
  R <- matrix(c(1, 0.3, -0.2, 0.3, 1, 0.5, -0.2, 0.5, 1), 3)
  B <- matrix(rnorm(3 * ng), ng, 3) %*% chol(diag(sd_b) %*% R %*% diag(sd_b))
  fi <- as.integer(f)
  gi <- as.integer(g)
  eta <- 1 + 0.5 * x + c(0, 0.8, -0.5)[fi] + c(0, 0.3, -0.4)[fi] * x + 0.2 * x2 +
    B[cbind(gi, 1)] + ifelse(fi == 2, B[cbind(gi, 2)], 0) + ifelse(fi == 3, B[cbind(gi, 3)], 0)
  y <- round(eta + rnorm(n, sd = 0.8 / sqrt(w)), 4)
  y_off <- round(eta + log(z) + rnorm(n, sd = 0.8), 4)
  data.frame(y = y, y_off = y_off, y_sing = y_sing, x = x, x2 = x2, x3 = x3, z = z,
             logz = log(z), w = w, f = f, g = g)
})
write_dataset(sim_factor, "sim_factor", "simulated in make_extra.R (set.seed(20240612))",
              note = paste("g: 40 levels s1..s40 (numeric order); f: levels low, mid, high (in that",
                           "order); 4 rows per g x f cell. y: f * x fixed effects plus 0.2 x2, a",
                           "correlated random intercept and f-effects per g, residual SD",
                           "0.8 / sqrt(w). y_off: the same linear predictor plus log(z), residual",
                           "SD 0.8. y_sing: 2 + 0.5 x + intercept per g (SD 1) + residual (SD 0.7).",
                           "x3 = x + x2 exactly (rank-deficient designs); logz = log(z)."))

# Three crossed grouping factors, each row drawn independently: a (60 levels), b (40), c (8).
sim_crossed3 <- local({
  set.seed(20240613)
  n <- 1200
  a <- factor(sprintf("a%02d", sample.int(60, n, replace = TRUE)), levels = sprintf("a%02d", 1:60))
  b <- factor(sprintf("b%02d", sample.int(40, n, replace = TRUE)), levels = sprintf("b%02d", 1:40))
  c3 <- factor(sprintf("c%d", sample.int(8, n, replace = TRUE)), levels = sprintf("c%d", 1:8))
  stopifnot(all(table(a) > 0), all(table(b) > 0), all(table(c3) > 0))
  x <- round(rnorm(n), 4)
  y <- 1 + 0.3 * x + rnorm(60, sd = 0.8)[as.integer(a)] + rnorm(40, sd = 0.5)[as.integer(b)] +
    rnorm(8, sd = 1.2)[as.integer(c3)] + rnorm(n)
  data.frame(y = round(y, 4), x = x, a = a, b = b, c = c3)
})
write_dataset(sim_crossed3, "sim_crossed3", "simulated in make_extra.R (set.seed(20240613))",
              note = "y = 1 + 0.3 x + u_a + u_b + u_c + e; SDs 0.8, 0.5, 1.2, 1; a, b, c drawn uniformly")

# Three-level nesting: 10 a, 4 b within each a, 3 c within each b, 5 rows per c (n = 600). The
# labels of b (1..4) and c (1..3) are reused in every parent, so only a/b/c identifies a unit.
sim_nested3 <- local({
  set.seed(20240614)
  na <- 10; nb <- 4; nc <- 3; nr <- 5
  a_i <- rep(1:na, each = nb * nc * nr)
  b_i <- rep(rep(1:nb, each = nc * nr), na)
  c_i <- rep(rep(1:nc, each = nr), na * nb)
  n <- length(a_i)
  x <- round(rnorm(n), 4)
  ab <- (a_i - 1) * nb + b_i
  abc <- (ab - 1) * nc + c_i
  ua <- matrix(rnorm(2 * na), na, 2) %*% diag(c(1.5, 0.6))
  uab <- matrix(rnorm(2 * na * nb), na * nb, 2) %*% diag(c(0.8, 0.4))
  uabc <- rnorm(na * nb * nc, sd = 0.5)
  y <- 5 + 0.7 * x + ua[a_i, 1] + ua[a_i, 2] * x + uab[ab, 1] + uab[ab, 2] * x + uabc[abc] +
    rnorm(n, sd = 0.6)
  data.frame(y = round(y, 4), x = x,
             a = factor(sprintf("A%02d", a_i), levels = sprintf("A%02d", 1:na)),
             b = factor(as.character(b_i), levels = as.character(1:nb)),
             c = factor(as.character(c_i), levels = as.character(1:nc)))
})
write_dataset(sim_nested3, "sim_nested3", "simulated in make_extra.R (set.seed(20240614))",
              note = paste("a (10) / b (4 per a, labels 1..4 reused) / c (3 per b, labels 1..3",
                           "reused), 5 rows per c. y = 5 + 0.7 x + intercept and x-slope per a",
                           "(SDs 1.5, 0.6) and per a:b (SDs 0.8, 0.4) + intercept per a:b:c (SD 0.5) +",
                           "e (SD 0.6)"))

# A medium-size crossed design: n = 20000, g1 with 1000 levels, g2 with 300 levels and a random
# x-slope on g2.
sim_big <- local({
  set.seed(20240615)
  n <- 20000
  g1 <- factor(sprintf("p%04d", sample.int(1000, n, replace = TRUE)), levels = sprintf("p%04d", 1:1000))
  g2 <- factor(sprintf("i%03d", sample.int(300, n, replace = TRUE)), levels = sprintf("i%03d", 1:300))
  stopifnot(all(table(g1) > 0), all(table(g2) > 0))
  x <- round(rnorm(n), 4)
  u1 <- rnorm(1000, sd = 0.7)
  U2 <- matrix(rnorm(600), 300, 2) %*% chol(matrix(c(0.25, 0.06, 0.06, 0.09), 2))
  i2 <- as.integer(g2)
  y <- 2 + 0.5 * x + u1[as.integer(g1)] + U2[i2, 1] + U2[i2, 2] * x + rnorm(n)
  data.frame(y = round(y, 4), x = x, g1 = g1, g2 = g2)
})
write_dataset(sim_big, "sim_big", "simulated in make_extra.R (set.seed(20240615))",
              note = paste("n = 20000; y = 2 + 0.5 x + u_g1 + v0_g2 + v1_g2 x + e; SD(u) = 0.7;",
                           "SD(v0, v1) = (0.5, 0.3), corr 0.4; SD(e) = 1; g1 (1000 levels) and",
                           "g2 (300 levels) drawn uniformly"))

write_json(catalogue, file.path(data_dir, "datasets.json"), auto_unbox = TRUE, pretty = TRUE,
           digits = NA, null = "null", na = "null")

# ---------------------------------------------------------------------------- fits

# lme4's default nloptwrap settings stop BOBYQA once one step changes the criterion by less than
# 1e-8, which sometimes leaves it short of the optimum. Every case is therefore also refitted
# with tight settings; the tests compare with whichever fit has the lower criterion ("best"),
# as tests/reference/README.md asks (the best value, not the first).
tight_ctrl <- list(ftol_abs = 1e-14, ftol_rel = 1e-15, xtol_abs = 1e-12, xtol_rel = 0,
                   maxeval = 1e5)

# lmer with warnings and messages collected instead of printed. lmer evaluates its weights and
# offset arguments in the data first and only then in the formula's environment, so the vectors
# are passed under names no data set uses (a data column w would otherwise be taken for
# weights = w even when w is NULL here).
run_lmer <- function(f, d, reml, .ref_weights, control, .ref_offset = NULL) {
  stopifnot(!any(c(".ref_weights", ".ref_offset") %in% names(d)))
  warns <- character(0)
  msgs <- character(0)
  elapsed <- NA_real_
  m <- withCallingHandlers(
    {
      t0 <- proc.time()[["elapsed"]]
      fit <- lme4::lmer(f, data = d, REML = reml, weights = .ref_weights, offset = .ref_offset,
                        control = control)
      elapsed <- proc.time()[["elapsed"]] - t0
      fit
    },
    warning = function(cond) {
      warns <<- c(warns, conditionMessage(cond))
      invokeRestart("muffleWarning")
    },
    message = function(cond) {
      msgs <<- c(msgs, conditionMessage(cond))
      invokeRestart("muffleMessage")
    }
  )
  list(model = m, warnings = warns, messages = msgs, elapsed = elapsed)
}

# The estimates of one fit, as recorded in the reference files.
fit_summary <- function(run, reml) {
  m <- run$model
  vc <- as.data.frame(VarCorr(m))
  vc_rows <- lapply(seq_len(nrow(vc)), function(i) {
    list(grp = vc$grp[i],
         var1 = if (is.na(vc$var1[i])) NULL else vc$var1[i],
         var2 = if (is.na(vc$var2[i])) NULL else vc$var2[i],
         vcov = vc$vcov[i], sdcor = vc$sdcor[i])
  })
  re <- ranef(m, condVar = FALSE)
  re_out <- lapply(names(re), function(grp) {
    tab <- re[[grp]]
    list(levels = I(rownames(tab)), terms = I(colnames(tab)),
         modes = setNames(lapply(colnames(tab), function(cn) I(tab[[cn]])), colnames(tab)))
  })
  names(re_out) <- names(re)
  ll <- logLik(m)
  th <- getME(m, "theta")
  list(
    warnings = I(run$warnings),
    messages = I(run$messages),
    conv_lme4_messages = I(as.character(unlist(m@optinfo$conv$lme4$messages))),
    optimizer = m@optinfo$optimizer,
    optimizer_feval = m@optinfo$feval,
    nobs = nobs(m),
    ngrps = as.list(ngrps(m)),
    X_colnames = I(colnames(getME(m, "X"))),
    dropped_columns = I(as.character(names(attr(getME(m, "X"), "col.dropped")))),
    fixef = as.list(fixef(m)),
    fixef_se = as.list(setNames(sqrt(diag(as.matrix(vcov(m)))), names(fixef(m)))),
    theta = as.list(th),
    theta_names = I(names(th)),
    theta_lower = I(getME(m, "lower")),
    sigma = sigma(m),
    varcorr = vc_rows,
    logLik = as.numeric(ll),
    logLik_df = attr(ll, "df"),
    deviance = if (reml) NULL else deviance(m),
    REMLcrit = if (reml) as.numeric(REMLcrit(m)) else NULL,
    AIC = AIC(m),
    BIC = BIC(m),
    isSingular = isSingular(m),
    ranef = re_out,
    timing = list(elapsed_s = run$elapsed,
                  what = "lmer call, elapsed seconds (proc.time), including the model setup")
  )
}

# formula_glamm: glamm's spelling of the formula where it differs from R's (formulaic uses Python
# syntax: I(x**2), np.log(x)); names_glamm: the coefficient / term names glamm gives where they
# follow from that spelling (R name -> glamm name, also applied inside theta and VarCorr names).
# offset_col: a column passed as lmer(offset = ) (glamm: lmer(offset = "col")).
fit_case <- function(case, formula, dataset, reml, weights_col = NULL, note = NULL,
                     formula_glamm = NULL, names_glamm = NULL, offset_col = NULL) {
  call <- sprintf("lmer(%s, data = %s, REML = %s%s%s)", formula, dataset, reml,
                  if (is.null(weights_col)) "" else sprintf(", weights = %s", weights_col),
                  if (is.null(offset_col)) "" else sprintf(", offset = %s", offset_col))
  d <- read_dataset(dataset)
  f <- as.formula(formula)
  # the same names as in run_lmer: lmer may look them up here (the formula's environment)
  .ref_weights <- if (is.null(weights_col)) NULL else d[[weights_col]]
  .ref_offset <- if (is.null(offset_col)) NULL else d[[offset_col]]
  default_run <- run_lmer(f, d, reml, .ref_weights, lmerControl(), .ref_offset)
  tight_run <- run_lmer(f, d, reml, .ref_weights,
                        lmerControl(optimizer = "nloptwrap", optCtrl = tight_ctrl), .ref_offset)
  crit <- function(m) if (reml) as.numeric(REMLcrit(m)) else deviance(m)
  c_default <- crit(default_run$model)
  c_tight <- crit(tight_run$model)
  tight <- fit_summary(tight_run, reml)
  tight$call <- sprintf("%s with control = lmerControl(optCtrl = list(%s))",
                        call, paste(names(tight_ctrl), unlist(tight_ctrl), sep = " = ",
                                    collapse = ", "))
  res <- c(
    list(
      case = case,
      call = call,
      formula = formula,
      formula_glamm = formula_glamm,
      names_glamm = if (is.null(names_glamm)) NULL else as.list(names_glamm),
      dataset = dataset,
      REML = reml,
      weights = weights_col,
      offset = offset_col,
      lme4_version = pkg_version("lme4"),
      packages = list(lme4 = pkg_version("lme4"), Matrix = pkg_version("Matrix"),
                      nlme = pkg_version("nlme"), R = as.character(getRversion())),
      note = note
    ),
    fit_summary(default_run, reml),
    list(
      best = if (c_tight < c_default) "tight" else "default",
      criterion_default_minus_tight = c_default - c_tight,
      tight = tight
    )
  )
  write_json(res, file.path(ref_dir, paste0(case, ".json")), auto_unbox = TRUE, pretty = TRUE,
             digits = NA, null = "null", na = "null")
  cat(sprintf("%-26s logLik %.12g  tight %.12g  best %-7s %5.2fs %s\n", case,
              as.numeric(logLik(default_run$model)), as.numeric(logLik(tight_run$model)),
              res$best, default_run$elapsed,
              paste(c(default_run$warnings, default_run$messages), collapse = " | ")))
  invisible(default_run$model)
}

fit_case("machines_nested_reml", "score ~ Machine + (1|Worker) + (1|Worker:Machine)",
         "Machines", TRUE)
fit_case("machines_unstr_ml", "score ~ Machine + (Machine|Worker)", "Machines", FALSE,
         note = "3 x 3 unstructured covariance")
fit_case("oats_nested_reml", "yield ~ nitro + Variety + (1|Block/Variety)", "Oats", TRUE)
fit_case("ergostool_ml", "effort ~ Type + (1|Subject)", "ergoStool", FALSE)
fit_case("orthodont_reml", "distance ~ age * Sex + (age|Subject)", "Orthodont", TRUE)
fit_case("orthodont_ml", "distance ~ age * Sex + (age|Subject)", "Orthodont", FALSE)
fit_case("cake_ordered_reml", "angle ~ recipe * temperature + (1|recipe:replicate)", "cake", TRUE,
         note = "temperature is an ordered factor: R codes it with contr.poly (.L, .Q, .C, ^4, ^5)")
fit_case("cake_poly_reml",
         "angle ~ recipe * C(temperature, contr.poly) + (1|recipe:replicate)", "cake", TRUE,
         note = "the same model as cake_ordered_reml with the polynomial contrasts written out")
fit_case("cake_temp_reml", "angle ~ recipe + temp + (1|recipe:replicate)", "cake", TRUE)
fit_case("chickweight_slope_ml", "weight ~ Time + Diet + (Time|Chick)", "ChickWeight", FALSE)
fit_case("chickweight_uncorr_reml", "weight ~ Time + (Time||Chick)", "ChickWeight", TRUE)
fit_case("sleepstudy_weights_ml", "Reaction ~ Days + (Days|Subject)", "sleepstudy_w", FALSE,
         weights_col = "w")
fit_case("sleepstudy_na_reml", "Reaction ~ Days + (1|Subject)", "sleepstudy_na", TRUE)
fit_case("penicillin_reml", "diameter ~ (1|plate) + (1|sample)", "Penicillin", TRUE)
fit_case("rail_reml", "travel ~ 1 + (1|Rail)", "Rail", TRUE)
fit_case("sim_crossed_ml", "y ~ x + (x|g) + (1|h)", "sim_crossed", FALSE)

# ---------------------------------------------------------------------------- fits, wave 2
# Formula features and model shapes not covered above.

# factor random effects
fit_case("machines_factor0_reml", "score ~ 0 + Machine + (0 + Machine | Worker)", "Machines", TRUE,
         note = "no fixed intercept (full dummy coding) and a factor random slope without intercept")
fit_case("machines_dblbar_reml", "score ~ Machine + (Machine || Worker)", "Machines", TRUE,
         note = paste("lme4 expands (Machine || Worker) for the factor Machine into (1 | Worker) +",
                      "(0 + Machine | Worker): an intercept plus a correlated 3 x 3 block of all",
                      "three dummies, which is over-parameterized. Only sigma^2 J + Sigma",
                      "(J: all-ones) is identified, not the two parts; the likelihood equals that",
                      "of (0 + Machine | Worker)."))
fit_case("simfactor_slope1_ml", "y ~ f * x + x2 + (1 + f | g)", "sim_factor", FALSE,
         note = "f: levels low, mid, high (non-alphabetical); g: s1..s40 in numeric order")

# fixed-part transforms
fit_case("oxboys_quad_ml", "height ~ age + I(age^2) + (age | Subject)", "Oxboys", FALSE,
         formula_glamm = "height ~ age + I(age**2) + (age | Subject)",
         names_glamm = c("I(age^2)" = "I(age ** 2)"))
fit_case("oxboys_poly_reml", "height ~ poly(age, 2) + (age | Subject)", "Oxboys", TRUE,
         note = "orthogonal polynomial (R's poly): the coefficients depend on its scaling and signs")
fit_case("co2_log_reml", "uptake ~ Type * Treatment + log(conc) + (log(conc) | Plant)", "CO2", TRUE,
         formula_glamm = "uptake ~ Type * Treatment + np.log(conc) + (np.log(conc) | Plant)",
         names_glamm = c("log(conc)" = "np.log(conc)"),
         note = "singular: correlation -1 between the intercept and the log(conc) slope")
fit_case("dialyzer_ml", "rate ~ (pressure + I(pressure^2)) * QB + (pressure | Subject)", "Dialyzer",
         FALSE, formula_glamm = "rate ~ (pressure + I(pressure**2)) * QB + (pressure | Subject)",
         names_glamm = c("I(pressure^2)" = "I(pressure ** 2)"))
fit_case("grouseticks_reml", "log(TICKS + 1) ~ YEAR + scale(HEIGHT) + (1 | BROOD) + (1 | LOCATION)",
         "grouseticks", TRUE, note = "transformed response; scale() in the fixed part")
fit_case("chickweight_dietslopes_reml", "weight ~ Time + Time:Diet + (Time | Chick)", "ChickWeight",
         TRUE, note = "numeric x factor interaction without the factor's main effect")
fit_case("chickweight_int_ml", "weight ~ Diet * Time + (Time | Chick)", "ChickWeight_int", FALSE,
         note = "grouping column stored as integers 1..50; factor * numeric interaction")

# crossed and nested grouping factors
fit_case("crossed3_reml", "y ~ x + (1 | a) + (1 | b) + (1 | c)", "sim_crossed3", TRUE)
fit_case("nested3_reml", "y ~ x + (1 | a/b/c)", "sim_nested3", TRUE,
         note = "lme4 names the innermost group c:(b:a)")
fit_case("nested_slope_reml", "y ~ x + (x | a/b)", "sim_nested3", TRUE)
fit_case("pixel_reml", "pixel ~ day + I(day^2) + (day | Dog) + (1 | Side:Dog)", "Pixel", TRUE,
         formula_glamm = "pixel ~ day + I(day**2) + (day | Dog) + (1 | Side:Dog)",
         names_glamm = c("I(day^2)" = "I(day ** 2)"))
fit_case("pixel_slope_nested_reml", "pixel ~ day + I(day^2) + (day | Dog/Side)", "Pixel", TRUE,
         formula_glamm = "pixel ~ day + I(day**2) + (day | Dog/Side)",
         names_glamm = c("I(day^2)" = "I(day ** 2)"),
         note = "singular: correlation 1 in the Side:Dog term")

# weights, offsets
fit_case("simfactor_weights_reml", "y ~ f * x + x2 + (1 + f | g)", "sim_factor", TRUE,
         weights_col = "w", note = "y's residual variance is 0.64 / w")
fit_case("simfactor_offset_reml", "y_off ~ f + x + offset(log(z)) + (1 | g)", "sim_factor", TRUE,
         formula_glamm = "y_off ~ f + x + offset(np.log(z)) + (1 | g)")
fit_case("simfactor_offsetarg_ml", "y_off ~ f + x + (1 | g)", "sim_factor", FALSE,
         offset_col = "logz", weights_col = "w")

# singular fits
fit_case("simfactor_singular_ml", "y_sing ~ x + (x || g)", "sim_factor", FALSE,
         note = "singular: the x-slope SD is 0 (y_sing has no random slope)")
fit_case("dyestuff2_reml", "Yield ~ 1 + (1 | Batch)", "Dyestuff2", TRUE,
         note = "singular: the Batch SD is 0")

# rank-deficient X: x3 = x + x2
fit_case("simfactor_rankdef_ml", "y ~ x + x3 + f + x2 + (1 | g)", "sim_factor", FALSE,
         note = "x3 = x + x2 exactly: lme4 drops the last column of the three, x2")

# missing values in the grouping column
fit_case("sleepstudy_int_na_reml", "Reaction ~ Days + (Days | Subject)", "sleepstudy_int_na", TRUE,
         note = "integer grouping column with NA; NA in Days; 5 rows dropped")
fit_case("orthodont_na_ml", "distance ~ age + Sex + (1 | Subject)", "Orthodont_na", FALSE,
         note = "ordered-factor grouping column with NA in 2 rows")

# medium-size crossed design
fit_case("big_crossed_reml", "y ~ x + (1 | g1) + (x | g2)", "sim_big", TRUE)
