import Testing
@testable import Fleet

@Suite struct FleetModuleTests {
    @Test("Fleet: module: API group is capstan.dev") func apiGroup() {
        #expect(Fleet.apiGroup == "capstan.dev")
    }
}
