/*
 * peer_static.c - a peer outside the library, linked -static: the dynamic
 * loader never loads anything into it, whatever LD_PRELOAD says.  It makes
 * one lock call through its own open of a file and reports it on stdout
 * (see qtest_peer_main in qtest.h for the arguments and the output).
 *
 * tests/c/run.sh builds it as target/ctests/peer_static:
 *     cc -static ... -o target/ctests/peer_static tests/c/peer_static.c
 * and the t_mirror* tests find it next to themselves (or through
 * QTEST_PEER_STATIC).
 */
#include "qtest.h"

int main(int argc, char **argv)
{
    return qtest_peer_main(argc, argv);
}
