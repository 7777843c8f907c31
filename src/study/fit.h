// fit.h: the power law of a data-scaling curve, err(D) = a * D^-b + c.
//
// Least squares in the original space. For a fixed floor c the model is
// linear in log space, log(err - c) = log a - b log D, so c is scanned on a
// grid in [0, min err) with (a, b) from that linear fit at each value, the
// best c is refined by golden-section search, and (a, b) are refitted. The
// residual reported (rmse) is in the units of err.
#pragma once

typedef struct {
    double a, b, c;   // err = a * D^-b + c
    double rmse;      // sqrt(mean (fit - err)^2)
    int n;            // points used
} mim_powerlaw;

// D (> 0) and err (> 0), n points. n >= 3 fits all three parameters; n == 2
// fixes c = 0 (a pure power law through both points). 0, or MIM_EARG when
// there are fewer than 2 usable points or all D are equal.
int mim_powerlaw_fit(const double* D, const double* err, int n, mim_powerlaw* out);
// a * D^-b + c
double mim_powerlaw_eval(const mim_powerlaw* p, double D);
