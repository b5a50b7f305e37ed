import AgentronCore
import Testing

@testable import AgentronExport

/// A profile's times as whole seconds and a startup probe's period × threshold
/// (`KubernetesProbeTiming`).
@Suite struct ProbeTimingTests {
    @Test(arguments: [
        (TimeSpan.minutes(30), 10, 180),
        (TimeSpan.seconds(95), 5, 19),
        (TimeSpan.seconds(7), 7, 1),
        (TimeSpan.seconds(97), 1, 97),
        (TimeSpan.seconds(60), 10, 6),
        (TimeSpan.seconds(12), 6, 2),
        (TimeSpan.seconds(1.5), 2, 1),
    ])
    func startupProbeUsesTheLongestPeriodUpToTenThatDividesTheTimeout(
        _ timeout: TimeSpan, _ period: Int, _ threshold: Int
    ) {
        let startup = KubernetesProbeTiming.startup(timeout)
        #expect(startup.periodSeconds == period, "\(timeout)")
        #expect(startup.failureThreshold == threshold, "\(timeout)")
    }

    @Test func secondsRoundUpToAWholeSecond() {
        #expect(KubernetesProbeTiming.seconds(.seconds(1.5)) == 2)
        #expect(KubernetesProbeTiming.seconds(.seconds(1.001)) == 2)
        #expect(KubernetesProbeTiming.seconds(.seconds(90)) == 90)
        #expect(KubernetesProbeTiming.seconds(.milliseconds(250)) == 1)
        #expect(KubernetesProbeTiming.seconds(.minutes(30)) == 1800)
    }

    @Test func secondsNeverGoBelowTheMinimum() {
        #expect(KubernetesProbeTiming.seconds(.seconds(0)) == 1)
        #expect(KubernetesProbeTiming.seconds(.seconds(0), minimum: 0) == 0)
        #expect(KubernetesProbeTiming.seconds(.seconds(3), minimum: 5) == 5)
        #expect(KubernetesProbeTiming.seconds(TimeSpan(seconds: -10)) == 1)
        #expect(KubernetesProbeTiming.seconds(TimeSpan(seconds: .nan)) == 1)
        #expect(KubernetesProbeTiming.seconds(TimeSpan(seconds: -.infinity)) == 1)
    }

    @Test func hugeSpansSaturateAtInt32Max() {
        let max = Int(Int32.max)
        for span in [
            TimeSpan(seconds: .infinity), TimeSpan(seconds: 1e300), TimeSpan(seconds: 9.3e15),
            TimeSpan(seconds: Double(Int32.max) + 1), .minutes(1e12),
        ] {
            #expect(KubernetesProbeTiming.seconds(span) == max, "\(span.seconds)")
        }
        #expect(KubernetesProbeTiming.seconds(TimeSpan(seconds: Double(Int32.max))) == max)
        #expect(KubernetesProbeTiming.seconds(TimeSpan(seconds: Double(Int32.max) - 1)) == max - 1)
        // Int32.max is prime: the only period that divides it is 1.
        let startup = KubernetesProbeTiming.startup(TimeSpan(seconds: .infinity))
        #expect(startup.periodSeconds == 1)
        #expect(startup.failureThreshold == max)
    }

    /// For every whole second up to 400, and for spans that are not numbers, negative or
    /// huge: the probe gives up exactly at the timeout, with a period from 1 to 10 and no
    /// longer period that would also divide it.
    @Test func periodTimesThresholdIsTheTimeoutForEverySpan() {
        var spans = (1...400).map { TimeSpan.seconds(Double($0)) }
        spans += [
            TimeSpan(seconds: .infinity), TimeSpan(seconds: -.infinity), TimeSpan(seconds: .nan),
            TimeSpan(seconds: -1), TimeSpan(seconds: 0), TimeSpan(seconds: 0.0004), TimeSpan(seconds: 2.5),
            TimeSpan(seconds: 1e9), TimeSpan(seconds: 2_147_483_640), TimeSpan(seconds: 1e18), .minutes(60 * 24 * 365),
        ]
        for span in spans {
            let total = KubernetesProbeTiming.seconds(span)
            let startup = KubernetesProbeTiming.startup(span)
            #expect(startup.periodSeconds * startup.failureThreshold == total, "\(span.seconds)")
            #expect((1...10).contains(startup.periodSeconds), "\(span.seconds)")
            #expect(startup.failureThreshold >= 1, "\(span.seconds)")
            #expect(startup.failureThreshold <= Int(Int32.max), "\(span.seconds)")
            let longer = stride(from: startup.periodSeconds + 1, through: 10, by: 1)
            #expect(!longer.contains { $0 <= total && total % $0 == 0 }, "\(span.seconds)")
        }
    }

    @Test func whenTheTimeoutIsUnderTenSecondsOneProbeCoversIt() {
        for whole in 1...10 {
            let startup = KubernetesProbeTiming.startup(.seconds(Double(whole)))
            #expect(startup.periodSeconds == whole)
            #expect(startup.failureThreshold == 1)
        }
    }
}
