/* A program of one's own linked against an installed ocnopt (issue 15):
 *
 *   cc link_demo.c $(pkg-config --cflags --libs ocnopt) -o link_demo
 *   ./link_demo FIXTURE_DIR
 *
 * Reads a fixture, recomputes it with the dense reference (`ocn verify` in
 * library form, SPEC §10 rev. 2 verdicts) and prints the report.  Exit 0
 * when every array agrees, 1 when one fails, 2 on bad input, 3 when the
 * library's version is not the one the headers announce. */
#include <ocn/fixture.h>
#include <ocn/harness.h>
#include <ocn/version.h>

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s FIXTURE_DIR\n", argv[0]);
        return 2;
    }
    if (strcmp(ocn_version(), OCN_VERSION)) {
        fprintf(stderr, "link_demo: headers say ocnopt %s, the library is %s\n", OCN_VERSION, ocn_version());
        return 3;
    }
    ocn_error e = {0};
    ocn_fixture *f = NULL;
    if (ocn_fixture_read(argv[1], &f, &e)) {
        fprintf(stderr, "link_demo: %s\n", ocn_error_message(&e));
        return 2;
    }
    ocn_report *rep = ocn_report_new();
    ocn_ref_opts o = {.fault = OCN_FAULT_NONE};
    int rc = rep ? ocn_verify_fixture(f, &o, rep, &e) : OCN_ENOMEM;
    int status = 2;
    if (rc) fprintf(stderr, "link_demo: %s\n", rep ? ocn_error_message(&e) : "out of memory");
    else {
        int failed = ocn_report_failures(rep), passed = ocn_report_passes(rep);
        printf("link_demo: ocnopt %s, %s: %d arrays recomputed, %d passed, %d failed\n", ocn_version(),
               f->game->name, ocn_report_compared(rep), passed, failed);
        status = failed || !passed ? 1 : 0;
    }
    ocn_report_free(rep);
    ocn_fixture_free(f);
    return status;
}
