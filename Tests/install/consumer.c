/* A program built against an installed LossKit only (make test-install): through pkg-config
 * (pkgconfig/Makefile) and through CMake's find_package (cmake/CMakeLists.txt).
 *   consumer LEVEL LIBDIR
 * checks that the library it loaded and every LossKit file mapped into it come from LIBDIR (the
 * installed folder, symlinks resolved), that the header and the library agree on the version,
 * that lk_cpu_level() is LEVEL (the widest level of this CPU: the installed CPU-level builds were
 * found), and a log loss and its gradient against their closed form. Exits non-zero otherwise. */
#define _DEFAULT_SOURCE /* realpath */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <losskit.h>

#define STR_(x) #x
#define STR(x) STR_(x)

static int failures = 0;

static void check(int ok, const char *what) {
    printf("%s: %s\n", ok ? "ok  " : "FAIL", what);
    if (!ok) failures++;
}

/* Whether the real path of `file` is directly in the folder `dir` (itself a real path). */
static int in_folder(const char *file, const char *dir) {
    char real[PATH_MAX];
    if (!realpath(file, real)) return 0;
    const size_t n = strlen(dir);
    return strncmp(real, dir, n) == 0 && real[n] == '/' && strchr(real + n + 1, '/') == NULL;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s LEVEL LIBDIR\n", argv[0]);
        return 2;
    }
    const char *level = argv[1];
    char libdir[PATH_MAX];
    if (!realpath(argv[2], libdir)) {
        perror(argv[2]);
        return 2;
    }

    /* Two examples, three classes. Row 0: scores (0, log 3, log 4), gold 1, so
     * loss = log(1 + 3 + 4) - log 3 = log(8/3); row 1: (log 5, 0, log 2), gold 0: log(8/5).
     * The mean is log(64/15) / 2; the gradient is (softmax - onehot) / 2 per row. */
    const double scores[6] = {0.0, log(3.0), log(4.0), log(5.0), 0.0, log(2.0)};
    const int32_t gold[2] = {1, 0};
    const double expected_grad[6] = {1.0 / 16, -5.0 / 16, 4.0 / 16, -3.0 / 16, 1.0 / 16, 2.0 / 16};
    double loss = -1.0, grad[6];
    lk_options opt;
    lk_status status = lk_options_init(&opt, LK_LOSS_LOG);
    if (status == LK_OK) status = lk_dense_f64(&opt, 2, 3, scores, gold, NULL, NULL, &loss, grad);
    check(status == LK_OK, "lk_dense_f64 returns LK_OK");
    printf("      loss %.17g, closed form log(64/15)/2 = %.17g\n", loss, 0.5 * log(64.0 / 15.0));
    check(fabs(loss - 0.5 * log(64.0 / 15.0)) <= 1e-15, "log loss = log(64/15)/2 within 1e-15");
    double worst = 0.0;
    for (int i = 0; i < 6; i++) worst = fmax(worst, fabs(grad[i] - expected_grad[i]));
    check(worst <= 1e-15, "gradient = (softmax - onehot)/2 within 1e-15");

    check(lk_version_number() == LK_VERSION_NUMBER, "lk_version_number() = LK_VERSION_NUMBER");
    const char *header_version = STR(LK_VERSION_MAJOR) "." STR(LK_VERSION_MINOR) "." STR(LK_VERSION_PATCH);
    printf("      lk_version() %s, header %s\n", lk_version(), header_version);
    check(strcmp(lk_version(), header_version) == 0, "lk_version() = the header's version");

    printf("      lk_cpu_level() %s, expected %s\n", lk_cpu_level(), level);
    check(strcmp(lk_cpu_level(), level) == 0, "lk_cpu_level() is this CPU's widest level");

    /* Every LossKit file mapped into this process comes from the installed folder: the library
     * liblosskit.so.VERSION, and the CPU-level build of LEVEL beside it unless LEVEL is the
     * baseline (the loader would otherwise have kept to the baseline). */
    char library[64], variant[64];
    snprintf(library, sizeof library, "liblosskit.so.%s", header_version);
    snprintf(variant, sizeof variant, "liblosskit-%s.so.%s", level, header_version);
    int elsewhere = 0, library_mapped = 0, variant_mapped = 0;
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[PATH_MAX + 256];
    while (maps && fgets(line, sizeof line, maps)) {
        char *path = strchr(line, '/');
        if (!path || !strstr(path, "liblosskit")) continue;
        path[strcspn(path, "\n")] = '\0';
        const char *name = strrchr(path, '/') + 1;
        if (!in_folder(path, libdir)) {
            if (!elsewhere) printf("      mapped from elsewhere: %s\n", path);
            elsewhere = 1;
        } else if (strcmp(name, library) == 0) {
            library_mapped = 1;
        } else if (strcmp(name, variant) == 0) {
            variant_mapped = 1;
        }
    }
    if (maps) fclose(maps);
    printf("      mapped from %s: %s%s%s\n", libdir, library_mapped ? library : "", variant_mapped ? " " : "",
           variant_mapped ? variant : "");
    check(maps != NULL && !elsewhere, "no LossKit file is mapped from outside the installed folder");
    check(library_mapped, "the installed liblosskit.so.VERSION is the library loaded");
    if (strcmp(level, "x86-64") != 0) check(variant_mapped, "the installed CPU-level build of this level is loaded");

    printf("%s\n", failures ? "consumer: FAILED" : "consumer: all checks passed");
    return failures ? 1 : 0;
}
