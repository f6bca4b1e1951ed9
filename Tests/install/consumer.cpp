// The C++ side of make test-install: built by CMake against an installed LossKit only
// (find_package(LossKit CONFIG REQUIRED), target LossKit::losskit).
//   consumer_cxx LEVEL
// checks the header in C++ (extern "C", the version macros against the library), that
// lk_cpu_level() is LEVEL (the installed CPU-level builds were found), and the softmax-margin
// loss per example against its closed form, in float. Exits non-zero otherwise.
#include <losskit.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s LEVEL\n", argv[0]);
        return 2;
    }
    int failures = 0;
    auto check = [&failures](bool ok, const std::string &what) {
        std::printf("%s: %s\n", ok ? "ok  " : "FAIL", what.c_str());
        if (!ok) failures++;
    };

    // Softmax-margin with 0/1 costs: loss_i = log(sum_j exp(s_j + [j != gold])) - s_gold.
    // Row 0: scores (0, 0, 0), gold 2: log(e + e + 1) = log(1 + 2e).
    // Row 1: scores (log 2, -1, -1), gold 0: log(2 + 1 + 1) - log 2 = log 2.
    const std::vector<float> scores = {0.0f, 0.0f, 0.0f, std::log(2.0f), -1.0f, -1.0f};
    const std::vector<int32_t> gold = {2, 0};
    std::vector<float> loss(2, -1.0f), grad(6);
    lk_options opt;
    lk_status status = lk_options_init(&opt, LK_LOSS_SOFTMAX_MARGIN);
    opt.reduction = LK_REDUCE_NONE;
    if (status == LK_OK)
        status = lk_dense_f32(&opt, 2, 3, scores.data(), gold.data(), nullptr, nullptr, loss.data(), grad.data());
    check(status == LK_OK, std::string("lk_dense_f32 returns LK_OK ") + (status == LK_OK ? "" : lk_last_error()));
    const double expected[2] = {std::log(1.0 + 2.0 * std::exp(1.0)), std::log(2.0)};
    std::printf("      losses %.9g %.9g, closed form %.9g %.9g\n", loss[0], loss[1], expected[0], expected[1]);
    for (int i = 0; i < 2; i++)
        check(std::fabs(loss[i] - expected[i]) <= 4e-7 * expected[i],
              "softmax-margin of row " + std::to_string(i) + " within 4e-7 of its closed form");

    check(lk_version_number() == LK_VERSION_NUMBER, "lk_version_number() = LK_VERSION_NUMBER");
    const std::string header = std::to_string(LK_VERSION_MAJOR) + "." + std::to_string(LK_VERSION_MINOR) + "." +
                               std::to_string(LK_VERSION_PATCH);
    std::printf("      lk_version() %s, header %s\n", lk_version(), header.c_str());
    check(header == lk_version(), "lk_version() = the header's version");
    std::printf("      lk_cpu_level() %s, expected %s\n", lk_cpu_level(), argv[1]);
    check(std::string(lk_cpu_level()) == argv[1], "lk_cpu_level() is this CPU's widest level");

    std::printf("%s\n", failures ? "consumer_cxx: FAILED" : "consumer_cxx: all checks passed");
    return failures ? 1 : 0;
}
