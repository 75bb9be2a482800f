import Testing
@testable import Workflows

@Suite struct WorkflowsModuleTests {
    @Test("Workflows: module: cluster-name label is Cluster API's") func clusterLabel() {
        #expect(Workflows.clusterNameLabel == "cluster.x-k8s.io/cluster-name")
    }
}
