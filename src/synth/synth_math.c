/* The little statistics synth needs: the normal CDF and its inverse (to turn a firing
 * probability into a bias), truncated-normal moments (to predict how much energy an FFN adds to
 * the residual stream), and the solver for the law of per-neuron firing probabilities. */
#include "synth/synth_internal.h"

#include "core/error.h"

#include <math.h>
#include <stdlib.h>

#define SQRT2 1.4142135623730951
#define SQRT2PI 2.5066282746310002

double synth_norm_cdf(double x) { return 0.5 * erfc(-x / SQRT2); }
double synth_norm_pdf(double x) { return exp(-0.5 * x * x) / SQRT2PI; }

/* Acklam's rational approximation (relative error 1.15e-9), then two Halley steps on erfc,
 * which bring it to double precision. */
double synth_norm_ppf(double p)
{
    static const double a[] = { -3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                                1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00 };
    static const double b[] = { -5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                                6.680131188771972e+01, -1.328068155288572e+01 };
    static const double c[] = { -7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                                -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00 };
    static const double d[] = { 7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                                3.754408661907416e+00 };
    if (p <= 0) return -INFINITY;
    if (p >= 1) return INFINITY;
    double x;
    if (p < 0.02425) {
        double q = sqrt(-2 * log(p));
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    } else if (p > 1 - 0.02425) {
        double q = sqrt(-2 * log(1 - p));
        x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    } else {
        double q = p - 0.5, r = q * q;
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
            (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
    }
    for (int it = 0; it < 2; it++) {
        double e = synth_norm_cdf(x) - p;
        double u = e * SQRT2PI * exp(0.5 * x * x);
        x = x - u / (1 + 0.5 * x * u);
    }
    return x;
}

double synth_relu_m1(double tau) { return tau * synth_norm_cdf(tau) + synth_norm_pdf(tau); }

double synth_relu_m2(double tau)
{
    return (tau * tau + 1) * synth_norm_cdf(tau) + tau * synth_norm_pdf(tau);
}

double synth_silu_m2(double sigma)
{
    /* plain quadrature: smooth integrand, negligible mass beyond |z| = 9 */
    const double h = 0.005;
    double s = 0;
    for (double z = -9; z <= 9; z += h) {
        double x = sigma * z, y = x / (1 + exp(-x));
        s += y * y * synth_norm_pdf(z);
    }
    return s * h;
}

/* ==== Correlated gate and up (dReLU with rank structure) ==== */

/* Phi2(h, h; rho) = Phi(h)^2 + (1/2pi) int_0^asin(rho) exp(-h^2 / (1 + sin t)) dt (the
 * derivative of the bivariate CDF in rho is the density; r = sin t removes the endpoint
 * singularity). The integrand is analytic on the interval: 8-point Gauss-Legendre is exact to
 * ~1e-12 for |rho| <= 0.95. */
double synth_bvn_orthant(double h, double rho)
{
    static const double x[4] = { 0.1834346424956498, 0.5255324099163290, 0.7966664774136267, 0.9602898564975363 };
    static const double w[4] = { 0.3626837833783620, 0.3137066458778873, 0.2223810344533745, 0.1012285362903763 };
    double P = synth_norm_cdf(h);
    if (rho == 0) return P * P;
    double a = asin(rho), half = 0.5 * a, s = 0, h2 = h * h;
    for (int k = 0; k < 4; k++)
        s += w[k] * (exp(-h2 / (1 + sin(half * (1 + x[k])))) + exp(-h2 / (1 + sin(half * (1 - x[k])))));
    return P * P + s * half / (2 * M_PI);
}

/* Newton on an increasing function, with a bisection bracket as the safeguard. */
double synth_bvn_solve(double p, double rho)
{
    double lo = -12, hi = 12, h = synth_norm_ppf(sqrt(p)), k = sqrt((1 - rho) / (1 + rho));
    for (int it = 0; it < 60; it++) {
        double f = synth_bvn_orthant(h, rho) - p;
        if (f < 0) lo = h; else hi = h;
        double d = 2 * synth_norm_pdf(h) * synth_norm_cdf(h * k);
        double nh = d > 0 ? h - f / d : 0.5 * (lo + hi);
        if (!(nh > lo && nh < hi)) nh = 0.5 * (lo + hi);
        if (fabs(nh - h) < 1e-13) return nh;
        h = nh;
    }
    return h;
}

/* Y given X = x is N(rho x, 1 - rho^2), so the inner expectation is closed form and one
 * Simpson integral over x remains (the integrand starts at 0 at x = -h and is smooth). */
void synth_drelu_moments(double h, double rho, double *m1, double *m2)
{
    const int n = 256;
    double sg = sqrt(1 - rho * rho), a = -h, b = (-h > 0 ? -h : 0) + 9;
    double dx = (b - a) / n, s1 = 0, s2 = 0;
    if (a >= b) { *m1 = *m2 = 0; return; }
    for (int k = 0; k <= n; k++) {
        double x = a + k * dx, g = h + x, t = (h + rho * x) / sg, ph = synth_norm_pdf(x);
        double wk = (k == 0 || k == n) ? 1 : (k & 1) ? 4 : 2;
        s1 += wk * g * ph * sg * synth_relu_m1(t);
        s2 += wk * g * g * ph * sg * sg * synth_relu_m2(t);
    }
    *m1 = s1 * dx / 3;
    *m2 = s2 * dx / 3;
}

/* ==== The firing law ==== */

static double sigmoid(double x) { return 1 / (1 + exp(-x)); }

struct law_eval { const double *z; int n, n_hot; };

/* Mean of p over the quantile points, and the share of the n_hot largest. */
static void law_moments(const struct law_eval *L, double mu, double sigma, double *mean, double *share)
{
    double tot = 0, hot = 0;
    for (int k = 0; k < L->n; k++) {
        double p = sigmoid(mu + sigma * L->z[k]);
        tot += p;
        if (k >= L->n - L->n_hot) hot += p; /* z ascends, so the hot ones are last */
    }
    *mean = tot / L->n;
    if (share) *share = tot > 0 ? hot / tot : 0;
}

static double law_mu_for_mean(const struct law_eval *L, double sigma, double mean)
{
    double lo = -80, hi = 80;
    for (int it = 0; it < 100; it++) {
        double mid = 0.5 * (lo + hi), m;
        law_moments(L, mid, sigma, &m, NULL);
        if (m < mean) lo = mid; else hi = mid;
    }
    return 0.5 * (lo + hi);
}

int synth_firing_law(double mean, double hot_frac, double hot_share, int n_points, double *mu, double *sigma)
{
    double *z = malloc((size_t)n_points * sizeof *z);
    if (!z) return pf_fail(PINFER_ENOMEM, "out of memory");
    for (int k = 0; k < n_points; k++) z[k] = synth_norm_ppf((k + 0.5) / n_points);
    int n_hot = (int)lround(hot_frac * n_points);
    if (n_hot < 1) n_hot = 1;
    struct law_eval L = { z, n_points, n_hot };
    int rc = 0;
    double s_lo = 0, s_hi = 20, share;
    if (hot_share <= (double)n_hot / n_points + 1e-9) {
        /* no skew requested: every neuron fires with the same probability */
        *sigma = 0;
        *mu = log(mean / (1 - mean));
        goto out;
    }
    double m_hi;
    law_moments(&L, law_mu_for_mean(&L, s_hi, mean), s_hi, &m_hi, &share);
    if (share < hot_share) {
        rc = pf_fail(PINFER_EINVAL, "cannot make %.0f%% of the neurons carry %.0f%% of the activations at "
                     "%.0f%% sparsity (the hot neurons would have to fire more than always)",
                     hot_frac * 100, hot_share * 100, (1 - mean) * 100);
        goto out;
    }
    for (int it = 0; it < 60; it++) {
        double s = 0.5 * (s_lo + s_hi), m;
        law_moments(&L, law_mu_for_mean(&L, s, mean), s, &m, &share);
        if (share < hot_share) s_lo = s; else s_hi = s;
    }
    *sigma = 0.5 * (s_lo + s_hi);
    *mu = law_mu_for_mean(&L, *sigma, mean);
out:
    free(z);
    return rc;
}
