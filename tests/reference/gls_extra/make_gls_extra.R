# Reference fits for tests/test_gls.py (nlme 3.1-162, R 4.2.2): gls() with every residual
# correlation structure glamm.gls has, alone and with varIdent. Run in this folder:
#   Rscript make_gls_extra.R
# Writes the simulated data (*.csv) and gls_extra.json (one record per case).
library(nlme); library(jsonlite)

# continuous times, irregular, 4-8 visits per subject; CAR(1) errors with phi = 0.6 per unit
set.seed(31)
n_id <- 40
irr <- do.call(rbind, lapply(seq_len(n_id), function(i) {
  k <- sample(4:8, 1)
  t <- sort(round(runif(k, 0, 6), 3))
  trt <- if (i %% 2 == 0) "b" else "a"
  S <- 0.6^abs(outer(t, t, "-")) * ifelse(trt == "a", 1, 1.8)^2
  e <- drop(t(chol(S)) %*% rnorm(k))
  x <- rnorm(k)
  data.frame(id = i, time = t, trt = trt, x = x, y = 2 + 0.5 * t - 0.3 * x + e)
}))
irr$id <- factor(irr$id); irr$trt <- factor(irr$trt, levels = c("a", "b"))
write.csv(irr, "long_irregular.csv", row.names = FALSE)

# integer times 1..8 with visits missing at random (gaps); AR(1) errors with phi = 0.5
set.seed(32)
gap <- do.call(rbind, lapply(seq_len(30), function(i) {
  t <- sort(sample(1:8, sample(5:8, 1)))
  S <- 0.5^abs(outer(t, t, "-"))
  e <- drop(t(chol(S)) %*% rnorm(length(t)))
  data.frame(id = i, day = t, y = 1 + 0.2 * t + e)
}))
gap$id <- factor(gap$id)
write.csv(gap, "long_gaps.csv", row.names = FALSE)

# 15 groups of 10 sites in [0, 5]^2; exponential field (range 1.5) plus independent noise
set.seed(33)
sg <- do.call(rbind, lapply(seq_len(15), function(g) {
  x <- runif(10, 0, 5); y <- runif(10, 0, 5)
  D <- as.matrix(dist(cbind(x, y)))
  u <- drop(t(chol(exp(-D / 1.5))) %*% rnorm(10))
  z <- rnorm(10)
  data.frame(grp = g, x = x, y = y, z = z, resp = 1 + 0.5 * z + u + rnorm(10, 0, 0.4))
}))
sg$grp <- factor(sg$grp)
write.csv(sg, "spatial_groups.csv", row.names = FALSE)

od <- read.csv("../data/Orthodont.csv")
od$Subject <- factor(od$Subject); od$Sex <- factor(od$Sex, levels = c("Male", "Female"))
od$pos <- od$age / 2 - 3
sp <- read.csv("../data/sim_spatial.csv")
sleep <- read.csv("../../../src/glamm/datasets/data/sleepstudy.csv")
sleep$Subject <- factor(sleep$Subject)
datasets <- list(long_irregular = irr, long_gaps = gap, spatial_groups = sg, Orthodont = od,
                 sim_spatial = sp, sleepstudy = sleep)

record <- function(call_text, data, glamm, notes = "") {
  d <- datasets[[data]]
  expr <- parse(text = call_text)[[1]]
  m <- eval(expr, list(d = d))
  reps <- 10
  elapsed <- system.time(for (r in seq_len(reps)) eval(expr, list(d = d)))[["elapsed"]] / reps
  cs <- m$modelStruct$corStruct; vs <- m$modelStruct$varStruct
  av <- m$apVar
  list(call = call_text, data = data, glamm = glamm, method = m$method,
       logLik = as.numeric(logLik(m)), AIC = AIC(m), BIC = BIC(m), nobs = m$dims$N,
       fixef = as.list(coef(m)), fixef_se = as.list(sqrt(diag(vcov(m)))), sigma = m$sigma,
       corStruct = if (is.null(cs)) NULL else as.numeric(coef(cs, unconstrained = FALSE)),
       corStruct_names = if (is.null(cs)) NULL else names(coef(cs, unconstrained = FALSE)),
       corStruct_unconstrained = if (is.null(cs)) NULL else as.numeric(coef(cs)),
       varStruct = if (is.null(vs)) NULL else as.list(coef(vs, unconstrained = FALSE)),
       apVar = if (is.character(av)) av else unname(av), apVar_names = if (is.character(av)) NULL
         else rownames(av),
       timing = list(median_elapsed_s = elapsed, method = "mean of 10 fits (system.time)"),
       notes = notes)
}

cases <- list(
  car1_ml = record("gls(y ~ time + x, data = d, correlation = corCAR1(form = ~ time | id), method = 'ML')",
    "long_irregular", list(formula = "y ~ time + x", correlation = "car1(time | id)", reml = FALSE)),
  car1_reml_varident = record("gls(y ~ time + x, data = d, correlation = corCAR1(form = ~ time | id), weights = varIdent(form = ~ 1 | trt))",
    "long_irregular", list(formula = "y ~ time + x", correlation = "car1(time | id)", reml = TRUE,
                           dispformula = "~ (1 | trt)"),
    "varStruct: SD ratio of level b to a (a first in the data and in the levels)"),
  ar1_gaps_ml = record("gls(y ~ day, data = d, correlation = corAR1(form = ~ day | id), method = 'ML')",
    "long_gaps", list(formula = "y ~ day", correlation = "ar1(day | id)", reml = FALSE),
    "times with gaps: nlme's corAR1 becomes corARMA(p = 1), phi^|t_i - t_j|"),
  ar1_reml = record("gls(Reaction ~ Days, data = d, correlation = corAR1(form = ~ Days | Subject))",
    "sleepstudy", list(formula = "Reaction ~ Days", correlation = "ar1(Days | Subject)", reml = TRUE)),
  symm_reml = record("gls(distance ~ age * Sex, data = d, correlation = corSymm(form = ~ 1 | Subject))",
    "Orthodont", list(formula = "distance ~ age * Sex", correlation = "symm(1 | Subject)", reml = TRUE),
    "corStruct: correlations of positions (1,2), (1,3), (1,4), (2,3), (2,4), (3,4)"),
  symm_pos_ml = record("gls(distance ~ age * Sex, data = d, correlation = corSymm(form = ~ pos | Subject), method = 'ML')",
    "Orthodont", list(formula = "distance ~ age * Sex", correlation = "symm(pos | Subject)", reml = FALSE)),
  cs_varident_reml = record("gls(distance ~ age * Sex, data = d, correlation = corCompSymm(form = ~ 1 | Subject), weights = varIdent(form = ~ 1 | Sex))",
    "Orthodont", list(formula = "distance ~ age * Sex", correlation = "cs(1 | Subject)", reml = TRUE,
                      dispformula = "~ (1 | Sex)")),
  gau_ml = record("gls(resp ~ z, data = d, correlation = corGaus(form = ~ x + y), method = 'ML')",
    "sim_spatial", list(formula = "resp ~ z", correlation = "gau(x + y)", reml = FALSE)),
  gau_nugget_grouped_ml = record("gls(resp ~ z, data = d, correlation = corGaus(form = ~ x + y | grp, nugget = TRUE), method = 'ML')",
    "spatial_groups", list(formula = "resp ~ z", correlation = "gau(x + y | grp, nugget=True)", reml = FALSE)),
  exp_grouped_reml = record("gls(resp ~ z, data = d, correlation = corExp(form = ~ x + y | grp))",
    "spatial_groups", list(formula = "resp ~ z", correlation = "exp(x + y | grp)", reml = TRUE)),
  ratio_ml = record("gls(resp ~ z, data = d, correlation = corRatio(form = ~ x + y), method = 'ML')",
    "sim_spatial", list(formula = "resp ~ z", correlation = "ratio(x + y)", reml = FALSE)),
  ratio_nugget_grouped_ml = record("gls(resp ~ z, data = d, correlation = corRatio(form = ~ x + y | grp, nugget = TRUE), method = 'ML')",
    "spatial_groups", list(formula = "resp ~ z", correlation = "ratio(x + y | grp, nugget=True)", reml = FALSE)),
  spher_ml = record("gls(resp ~ z, data = d, correlation = corSpher(form = ~ x + y), method = 'ML')",
    "sim_spatial", list(formula = "resp ~ z", correlation = "spher(x + y)", reml = FALSE)),
  spher_ml_start = record("gls(resp ~ z, data = d, correlation = corSpher(3.7, form = ~ x + y), method = 'ML')",
    "sim_spatial", list(formula = "resp ~ z", correlation = "spher(x + y)", reml = FALSE),
    "spher_ml with a starting range of 3.7: nlme's default start (1.1 * min distance) stays where the correlation matrix is nearly the identity"),
  spher_nugget_grouped_ml = record("gls(resp ~ z, data = d, correlation = corSpher(form = ~ x + y | grp, nugget = TRUE), method = 'ML')",
    "spatial_groups", list(formula = "resp ~ z", correlation = "spher(x + y | grp, nugget=True)", reml = FALSE)),
  lin_ml = record("gls(resp ~ z, data = d, correlation = corLin(form = ~ x + y), method = 'ML')",
    "sim_spatial", list(formula = "resp ~ z", correlation = "lin(x + y)", reml = FALSE)),
  lin_grouped_ml = record("gls(resp ~ z, data = d, correlation = corLin(form = ~ x + y | grp), method = 'ML')",
    "spatial_groups", list(formula = "resp ~ z", correlation = "lin(x + y | grp)", reml = FALSE),
    "with nugget = TRUE nlme stops with false convergence on these data"),
  exp_manhattan_ml = record("gls(resp ~ z, data = d, correlation = corExp(form = ~ x + y | grp, metric = 'manhattan'), method = 'ML')",
    "spatial_groups", list(formula = "resp ~ z", correlation = "exp(x + y | grp, metric='manhattan')", reml = FALSE))
)
out <- list(nlme = as.character(packageVersion("nlme")), R = R.version.string, cases = cases)
write(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE, null = "null"), "gls_extra.json")
