/* Compiled once per public header with -std=c99 -pedantic -Werror: every header must stand
 * alone. SCORE_TEST_HEADER is the header's name, e.g. "libscore/rng.h". */
#include SCORE_TEST_HEADER
#include SCORE_TEST_HEADER /* include guards work */

int main(void)
{
    return 0;
}
