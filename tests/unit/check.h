/* check.h - the assertion of the C unit tests: report the failed condition, fail the test. */
#ifndef BUFSHIM_TEST_CHECK_H
#define BUFSHIM_TEST_CHECK_H

#include <stdio.h>

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);                  \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

#endif /* BUFSHIM_TEST_CHECK_H */
