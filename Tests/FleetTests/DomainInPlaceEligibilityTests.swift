import Testing
@testable import Fleet

// Checked by breaking on purpose: comparing whole versions instead of minor lines in
// `refusal` lets 1.33.2 → 1.34.0 through and fails the minor case.

private func v(_ text: String) -> KubernetesVersion { try! KubernetesVersion(parsing: text) }

@Suite struct DomainInPlaceUpgradeTests {
    static let cases: [(String, String, InPlaceEligibility.Refusal?)] = [
        ("v1.33.2", "v1.33.5", nil),
        ("v1.33.2", "v1.34.0", .minorChange),
        ("v1.33.2", "v1.33.2", .unchanged),
        ("v1.33.5", "v1.33.2", .downgrade),
        ("v1.34.0", "v1.33.9", .downgrade),
    ]

    @Test("InPlaceEligibility: eligibility: a patch in place, never a minor", arguments: cases)
    func eligibility(current: String, desired: String, expected: InPlaceEligibility.Refusal?) {
        #expect(InPlaceEligibility.refusal(from: v(current), to: v(desired), strategy: .default) == expected)
    }

    @Test("InPlaceEligibility: strategy: OnDelete never in place and never falls back to replacement")
    func onDelete() {
        #expect(InPlaceEligibility.refusal(from: v("1.33.2"), to: v("1.33.5"), strategy: .onDelete) == .onDeleteStrategy)
        #expect(!InPlaceEligibility.allowsReplacementFallback(.onDelete))
        #expect(InPlaceEligibility.allowsReplacementFallback(.default))
        #expect(InPlaceEligibility.message(.minorChange, from: v("1.33.2"), to: v("1.34.0")).contains("v1.33.2 → v1.34.0"))
    }
}
