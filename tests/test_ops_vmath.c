/* The vectorised exp-and-sum and max of vmath.h against libm in double: every tail
 * length, the whole softmax input range, -inf giving exactly 0. */
#include <math.h>

#include "ops/vmath.h"
#include "ops_check.h"

static void test_vexp_accuracy(void)
{
    unsigned long long seed = 9;
    float x[4096];
    double worst = 0.0;
    for (int i = 0; i < 4096; i++)
        x[i] = i < 2048 ? -85.0f * (float)i / 2048.0f : 40.0f * test_randf(&seed); /* [-86.5, 1.5] - 1.5 and [-40, 40] - 1.5 */
    float orig[4096];
    for (int i = 0; i < 4096; i++)
        orig[i] = x[i];
    float sum = ts_vexp_sum(x, 4096, 1.5f);
    double want_sum = 0.0;
    for (int i = 0; i < 4096; i++) {
        double want = exp((double)(orig[i] - 1.5f)); /* the shift is a float subtraction */
        want_sum += want;
        double e = fabs(x[i] - want) / want;
        worst = e > worst ? e : worst;
    }
    CHECK_MSG(worst < 3e-7, "worst relative error %.3g (2.5 ulp)", worst);
    CHECK_NEAR(sum / want_sum, 1.0, 1e-6);
    float tiny[2] = {-88.0f, -200.0f}; /* below expf's normal range: flushed to 0 */
    CHECK(ts_vexp_sum(tiny, 2, 0.0f) < 1e-37f && tiny[1] == 0.0f);
}

static void test_vexp_tails_and_masks(void)
{
    for (int n = 0; n <= 19; n++) {
        float x[19], ref[19];
        double want = 0.0;
        for (int i = 0; i < n; i++) {
            x[i] = i % 3 == 0 ? -INFINITY : (float)i * 0.25f - 2.0f;
            ref[i] = (float)exp((double)x[i]);
            want += ref[i];
        }
        float got = ts_vexp_sum(x, n, 0.0f);
        CHECK_NEAR(got, want, 1e-5 * (want + 1));
        for (int i = 0; i < n; i++) {
            if (i % 3 == 0)
                CHECK(x[i] == 0.0f);
            else
                CHECK_NEAR(x[i], ref[i], 3e-7 * ref[i]);
        }
        float m = ts_vmax(ref, n);
        float mref = -INFINITY;
        for (int i = 0; i < n; i++)
            mref = ref[i] > mref ? ref[i] : mref;
        CHECK(m == mref);
    }
}

TEST_MAIN(TEST(test_vexp_accuracy), TEST(test_vexp_tails_and_masks))
