// Compiled once per public header as C++ (-Werror): every header must be usable from C++.
#include SCORE_TEST_HEADER
#include <libscore/libscore.h>

int main()
{
    // Link check from C++: the extern "C" block must be in place.
    return score_version_number() == SCORE_VERSION_NUMBER ? 0 : 1;
}
