import CLossKit
import Glibc
import Testing

@Test func logLossOfTwoClassesMatchesClosedForm() {
    var opt = lk_options()
    #expect(lk_options_init(&opt, LK_LOSS_LOG) == LK_OK)
    let scores: [Double] = [0, log(3.0)]
    let gold: [Int32] = [1]
    var loss = 0.0
    #expect(lk_dense_f64(&opt, 1, 2, scores, gold, nil, nil, &loss, nil) == LK_OK)
    #expect(abs(loss - log(4.0 / 3.0)) < 1e-15)
}
