/* SVD pseudo-inverse (SPEC §5 rcond rule) on rank-deficient matrices,
 * checked against the four Moore–Penrose conditions and closed forms. */
#include "util.h"

#include <float.h>
#include <math.h>

static void matmul(const double *A, const double *B, double *C, int r, int k, int c)
{
    for (int i = 0; i < r; i++)
        for (int j = 0; j < c; j++) {
            double s = 0;
            for (int l = 0; l < k; l++) s += A[i * k + l] * B[l * c + j];
            C[i * c + j] = s;
        }
}

static double relerr(const double *x, const double *y, int n)
{
    double d = 0, r = 0;
    for (int i = 0; i < n; i++) d += (x[i] - y[i]) * (x[i] - y[i]), r += y[i] * y[i];
    return sqrt(d) / fmax(sqrt(r), DBL_MIN);
}

/* The four Penrose conditions, each to a §10 ratio < 30 with c = size·cond. */
static void penrose(const double *A, const double *P, int r, int c, double cond)
{
    double AP[64], PA[64], APA[64], PAP[64], T[64];
    matmul(A, P, AP, r, c, r);
    matmul(P, A, PA, c, r, c);
    matmul(AP, A, APA, r, r, c);
    matmul(PA, P, PAP, c, c, r);
    double u = DBL_EPSILON / 2, cc = (r + c) * cond;
    cr_assert_lt(relerr(APA, A, r * c) / (u * cc), 30.0, "A A+ A = A");
    cr_assert_lt(relerr(PAP, P, r * c) / (u * cc), 30.0, "A+ A A+ = A+");
    for (int i = 0; i < r; i++)
        for (int j = 0; j < r; j++) T[i * r + j] = AP[j * r + i];
    cr_assert_lt(relerr(T, AP, r * r) / (u * cc), 30.0, "A A+ symmetric");
    for (int i = 0; i < c; i++)
        for (int j = 0; j < c; j++) T[i * c + j] = PA[j * c + i];
    cr_assert_lt(relerr(T, PA, c * c) / (u * cc), 30.0, "A+ A symmetric");
}

Test(pinv, rank_one_closed_form)
{
    double u[3] = {1, -2, 0.5}, v[4] = {0.3, 1, -1, 2}, A[12], P[12], W[12], cond;
    double nu = 0, nv = 0;
    for (int i = 0; i < 3; i++) nu += u[i] * u[i];
    for (int j = 0; j < 4; j++) nv += v[j] * v[j];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++) A[i * 4 + j] = u[i] * v[j], W[j * 3 + i] = v[j] * u[i] / (nu * nv);
    ocn_error e = {0};
    cr_assert_eq(ocn_ref_pinv(A, 3, 4, P, &cond, &e), OCN_OK, "%s", e.msg);
    cr_assert_float_eq(cond, 1.0, 1e-12, "one retained singular value: cond 1");
    cr_assert_lt(relerr(P, W, 12) / (DBL_EPSILON / 2 * 7), 30.0, "(u vᵀ)^+ = v uᵀ / (|u|²|v|²)");
    penrose(A, P, 3, 4, cond);
    /* the transposed (tall) case */
    double At[12], Pt[12];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++) At[j * 3 + i] = A[i * 4 + j];
    cr_assert_eq(ocn_ref_pinv(At, 4, 3, Pt, &cond, &e), OCN_OK);
    penrose(At, Pt, 4, 3, cond);
}

Test(pinv, rcond_drops_tiny_singular_values)
{
    /* diag(2, 1e-17, 0.5): 1e-17 < rcond·σmax = 3·eps·2, so it is treated as zero */
    double A[9] = {2, 0, 0, 0, 1e-17, 0, 0, 0, 0.5}, P[9], cond;
    ocn_error e = {0};
    cr_assert_eq(ocn_ref_pinv(A, 3, 3, P, &cond, &e), OCN_OK);
    cr_assert_float_eq(P[0], 0.5, 1e-15);
    cr_assert_eq(P[4], 0.0, "value below rcond must be dropped, not inverted to 1e17");
    cr_assert_float_eq(P[8], 2.0, 1e-15);
    cr_assert_float_eq(cond, 4.0, 1e-12, "cond over the numerical range");
    penrose(A, P, 3, 3, cond);
}

Test(pinv, rank_two_of_four_and_zero)
{
    double B[8] = {1, 2, 0, -1, 0.5, 1, 3, 1}, A[16], P[16], cond; /* A = Bᵀ B: 4x4 rank 2 */
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) A[i * 4 + j] = B[i] * B[j] + B[4 + i] * B[4 + j];
    ocn_error e = {0};
    cr_assert_eq(ocn_ref_pinv(A, 4, 4, P, &cond, &e), OCN_OK);
    penrose(A, P, 4, 4, cond);
    double Z[4] = {0}, PZ[4];
    cr_assert_eq(ocn_ref_pinv(Z, 2, 2, PZ, &cond, &e), OCN_OK, "zero matrix has pseudo-inverse 0");
    for (int i = 0; i < 4; i++) cr_assert_eq(PZ[i], 0.0);
    double N[4] = {1, NAN, 0, 1};
    cr_assert_eq(ocn_ref_pinv(N, 2, 2, PZ, &cond, &e), OCN_ENUMERIC, "NaN input is an error, not a NaN output");
}
