import CapstanSupport
public import EventLog

/// One generated event and the stream it belongs to.
public struct GeneratedEvent: Hashable, Sendable {
    public var streamID: StreamID
    public var event: ProposedEvent

    public init(streamID: StreamID, event: ProposedEvent) {
        self.streamID = streamID
        self.event = event
    }
}

/// A seeded, endless source of realistic lifecycle events for one workload cluster.
///
/// The story follows Cluster API on KubeVirt with a Kamaji control plane: the cluster is
/// created at a Kubernetes v1.33 patch, its machines are provisioned (`kubevirt://` provider
/// ids, Ready conditions), the control plane is upgraded one minor at a time to v1.36 with
/// the workers following, and then the cluster lives on: conditions flap, machines are
/// remediated and replaced, machine deployments scale up. Payloads are JSON of about 300
/// bytes with names, namespaces, uids, versions and RFC 3339 timestamps, like the events the
/// engine writes; every event's id carries `contentHash(type:payload:)` in its low half so a
/// reader can check it came back whole.
///
/// Each generator owns its streams (`cluster/<name>`, `machine/<name>/<machine>`,
/// `workflow/<kind>/<name>/<run>`), so several generators with distinct `fleetIndex` values
/// can append concurrently without conflicting. The same `seed` and `fleetIndex` always
/// give the same events.
public struct LifecycleEventGenerator: Sendable {
    /// The cluster this generator tells the story of, such as `prod-eu-west-3-k7q0`.
    public let clusterName: String
    /// The namespace of the cluster's objects in the management cluster.
    public let namespace: String

    private var random: SeededRandom
    private var clockNanoseconds: Int64
    private var pending: [GeneratedEvent] = []
    private var pendingIndex = 0
    private var machines: [String] = []
    private var controlPlaneVersion: String
    private var workerVersion: String
    private var upgraded = false
    private var episodeCount = 0
    private var observedGeneration = 1

    /// The latest known patches of the minors a chained upgrade from v1.33 passes through
    /// before its v1.36 target.
    static let upgradeChain = ["v1.34.2", "v1.35.1"]

    /// - Parameters:
    ///   - seed: Drives every choice; print it to replay a run.
    ///   - fleetIndex: Distinguishes clusters generated from the same seed.
    ///   - machineCount: Worker machines provisioned when the cluster is created.
    ///   - startNanoseconds: The virtual clock's start (Unix epoch, UTC); the clock advances
    ///     by a few hundred milliseconds per event.
    public init(
        seed: UInt64, fleetIndex: Int = 0, machineCount: Int = 3,
        startNanoseconds: Int64 = 1_795_420_800_000_000_000  // 2026-11-23T08:00:00Z
    ) {
        var random = SeededRandom(seed: seed &+ UInt64(fleetIndex) &* 0x9E37_79B9_7F4A_7C15)
        let environment = random.pick(["prod", "staging", "edge", "dev", "perf"])
        let region = random.pick(["eu-west-3", "us-east-1", "ap-south-1", "eu-central-1", "us-west-2"])
        clusterName = "\(environment)-\(region)-\(random.alphanumeric(3))\(fleetIndex)"
        namespace = "fleet-\(environment)"
        controlPlaneVersion = "v1.33.\(4 + random.below(4))"
        workerVersion = controlPlaneVersion
        clockNanoseconds = startNanoseconds + Int64(fleetIndex) * 17_000_000
        self.random = random
        queueClusterCreation(machineCount: max(1, machineCount))
    }

    /// The next event of the story.
    public mutating func next() -> GeneratedEvent {
        if pendingIndex == pending.count {
            pending.removeAll(keepingCapacity: true)
            pendingIndex = 0
            queueNextEpisode()
        }
        defer { pendingIndex += 1 }
        return pending[pendingIndex]
    }

    /// The next `count` events of the story, in order.
    public mutating func next(_ count: Int) -> [GeneratedEvent] {
        var events: [GeneratedEvent] = []
        events.reserveCapacity(count)
        for _ in 0..<count { events.append(next()) }
        return events
    }

    // MARK: episodes

    private mutating func queueNextEpisode() {
        episodeCount += 1
        if !upgraded {
            queueChainedUpgrade()
            return
        }
        switch random.below(10) {
        case 0...4: queueConditionFlap()
        case 5...7: queueRemediation()
        default: queueScaleUp()
        }
    }

    private mutating func queueClusterCreation(machineCount: Int) {
        let run = random.alphanumeric(5)
        let correlation = makeRunID()
        emit(
            clusterStream, "fleet.ClusterCreated", correlation,
            """
            {"cluster":"\(clusterName)","namespace":"\(namespace)","uid":"\(random.uid())",\
            "infrastructure":"KubevirtCluster","controlPlane":{"kind":"KamajiControlPlane",\
            "version":"\(controlPlaneVersion)","replicas":3,"dataStore":"etcd-\(random.alphanumeric(4))"},\
            "machineDeployment":"\(clusterName)-md-0","workers":\(machineCount),"createdAt":"\(timestamp())"}
            """)
        for _ in 0..<machineCount {
            queueProvisioning(machine: "\(clusterName)-md-0-\(random.alphanumeric(5))", run: run, correlation: correlation)
        }
    }

    private mutating func queueProvisioning(machine: String, run: String, correlation: EventID) {
        machines.append(machine)
        let workflow = StreamID("workflow/provision/\(clusterName)/\(run)")
        let activity = activityFields(workflow: workflow, activity: "provision-\(machine)", kind: "ProvisionMachine")
        emit(workflow, "ActivityStarted", correlation, "{\(activity),\"attempt\":1,\"startedAt\":\"\(timestamp())\"}")
        let vmUID = random.uid()
        emit(
            machineStream(machine), "fleet.MachineProvisioned", correlation,
            """
            {"cluster":"\(clusterName)","namespace":"\(namespace)","machine":"\(machine)",\
            "uid":"\(random.uid())","providerID":"kubevirt://\(namespace)/\(machine)","vmUID":"\(vmUID)",\
            "version":"\(workerVersion)","bootstrap":"kubeadm","cpu":\(2 << random.below(3)),\
            "memory":"\(8 << random.below(3))Gi","provisionedAt":"\(timestamp())"}
            """)
        queueCondition(machine: machine, type: "Ready", status: "True", reason: "NodeHealthy", correlation: correlation)
        emit(
            workflow, "ActivityCompleted", correlation,
            "{\(activity),\"attempt\":1,\"durationMs\":\(20_000 + random.below(90_000)),\"completedAt\":\"\(timestamp())\"}"
        )
    }

    private mutating func queueChainedUpgrade() {
        upgraded = true
        let correlation = makeRunID()
        let target = "v1.36.\(random.below(3))"
        let steps = Self.upgradeChain + [target]
        let workflow = StreamID("workflow/upgrade/\(clusterName)/\(random.alphanumeric(5))")
        let plan = steps.map { "\"\($0)\"" }.joined(separator: ",")
        emit(
            workflow, "UpgradePlanned", correlation,
            """
            {"workflow":"\(workflow)","cluster":"\(clusterName)","namespace":"\(namespace)",\
            "from":"\(controlPlaneVersion)","to":"\(target)","controlPlaneSteps":[\(plan)],\
            "workers":"leapAtEnd","requestedBy":"cli:alice","plannedAt":"\(timestamp())"}
            """)
        for (index, step) in steps.enumerated() {
            let activity = activityFields(workflow: workflow, activity: "cp-step-\(index + 1)", kind: "UpgradeControlPlaneStep")
            emit(workflow, "ActivityStarted", correlation, "{\(activity),\"attempt\":1,\"startedAt\":\"\(timestamp())\"}")
            observedGeneration += 1
            emit(
                clusterStream, "fleet.KubernetesVersionChanged", correlation,
                """
                {"cluster":"\(clusterName)","namespace":"\(namespace)","component":"controlPlane",\
                "object":"KamajiControlPlane/\(clusterName)","from":"\(controlPlaneVersion)","to":"\(step)",\
                "step":\(index + 1),"of":\(steps.count),"observedGeneration":\(observedGeneration),\
                "changedAt":"\(timestamp())"}
                """)
            controlPlaneVersion = step
            queueCondition(
                object: "KamajiControlPlane/\(clusterName)", stream: clusterStream, type: "ControlPlaneReady",
                status: "True", reason: "UpgradeStepSucceeded", correlation: correlation)
            emit(
                workflow, "ActivityCompleted", correlation,
                "{\(activity),\"attempt\":1,\"durationMs\":\(60_000 + random.below(240_000)),\"completedAt\":\"\(timestamp())\"}"
            )
        }
        for machine in machines {
            let activity = activityFields(workflow: workflow, activity: "worker-\(machine)", kind: "InPlaceUpgrade")
            emit(workflow, "ActivityStarted", correlation, "{\(activity),\"attempt\":1,\"startedAt\":\"\(timestamp())\"}")
            emit(
                machineStream(machine), "fleet.KubernetesVersionChanged", correlation,
                """
                {"cluster":"\(clusterName)","namespace":"\(namespace)","component":"kubelet",\
                "object":"Machine/\(machine)","from":"\(workerVersion)","to":"\(controlPlaneVersion)",\
                "providerID":"kubevirt://\(namespace)/\(machine)","changedAt":"\(timestamp())"}
                """)
            emit(
                workflow, "ActivityCompleted", correlation,
                "{\(activity),\"attempt\":1,\"durationMs\":\(30_000 + random.below(120_000)),\"completedAt\":\"\(timestamp())\"}"
            )
        }
        workerVersion = controlPlaneVersion
        emit(
            workflow, "WorkflowCompleted", correlation,
            """
            {"workflow":"\(workflow)","cluster":"\(clusterName)","namespace":"\(namespace)",\
            "result":"Succeeded","version":"\(controlPlaneVersion)","steps":\(steps.count),\
            "machines":\(machines.count),"completedAt":"\(timestamp())"}
            """)
    }

    private mutating func queueConditionFlap() {
        let correlation = makeRunID()
        let machine = random.pick(machines)
        let (type, reason) = random.pick([
            ("Ready", "KubeletNotReady"), ("MemoryPressure", "KubeletHasInsufficientMemory"),
            ("DiskPressure", "KubeletHasDiskPressure"), ("Ready", "NodeStatusUnknown"),
        ])
        let bad = type == "Ready" ? "False" : "True"
        let good = type == "Ready" ? "True" : "False"
        queueCondition(machine: machine, type: type, status: bad, reason: reason, correlation: correlation)
        queueCondition(machine: machine, type: type, status: good, reason: "NodeHealthy", correlation: correlation)
    }

    private mutating func queueRemediation() {
        let correlation = makeRunID()
        let index = random.below(machines.count)
        let failed = machines[index]
        machines.remove(at: index)
        queueCondition(
            machine: failed, type: "Ready", status: "False", reason: "NodeStatusUnknown", correlation: correlation)
        let run = random.alphanumeric(5)
        let workflow = StreamID("workflow/remediate/\(clusterName)/\(run)")
        let activity = activityFields(workflow: workflow, activity: "delete-\(failed)", kind: "DeleteMachine")
        emit(workflow, "ActivityStarted", correlation, "{\(activity),\"attempt\":1,\"startedAt\":\"\(timestamp())\"}")
        emit(
            machineStream(failed), "fleet.MachineDeleted", correlation,
            """
            {"cluster":"\(clusterName)","namespace":"\(namespace)","machine":"\(failed)",\
            "providerID":"kubevirt://\(namespace)/\(failed)","reason":"MachineHealthCheckFailed",\
            "drained":true,"deletedAt":"\(timestamp())"}
            """)
        emit(
            workflow, "ActivityCompleted", correlation,
            "{\(activity),\"attempt\":1,\"durationMs\":\(5_000 + random.below(60_000)),\"completedAt\":\"\(timestamp())\"}"
        )
        queueProvisioning(machine: "\(clusterName)-md-0-\(random.alphanumeric(5))", run: run, correlation: correlation)
    }

    private mutating func queueScaleUp() {
        let correlation = makeRunID()
        observedGeneration += 1
        emit(
            clusterStream, "fleet.MachineDeploymentScaled", correlation,
            """
            {"cluster":"\(clusterName)","namespace":"\(namespace)","machineDeployment":"\(clusterName)-md-0",\
            "from":\(machines.count),"to":\(machines.count + 1),"observedGeneration":\(observedGeneration),\
            "scaledAt":"\(timestamp())"}
            """)
        queueProvisioning(
            machine: "\(clusterName)-md-0-\(random.alphanumeric(5))", run: random.alphanumeric(5), correlation: correlation)
    }

    // MARK: pieces

    private var clusterStream: StreamID { StreamID("cluster/\(clusterName)") }

    private func machineStream(_ machine: String) -> StreamID { StreamID("machine/\(clusterName)/\(machine)") }

    private mutating func queueCondition(
        machine: String, type: String, status: String, reason: String, correlation: EventID
    ) {
        queueCondition(
            object: "Machine/\(machine)", stream: machineStream(machine), type: type, status: status, reason: reason,
            correlation: correlation)
    }

    private mutating func queueCondition(
        object: String, stream: StreamID, type: String, status: String, reason: String, correlation: EventID
    ) {
        let message: String
        switch (type, status) {
        case ("ControlPlaneReady", "True"): message = "control plane reports \(controlPlaneVersion) and all replicas ready"
        case ("Ready", "True"): message = "kubelet is posting ready status"
        default: message = "condition \(type) is \(status) since the last probe"
        }
        emit(
            stream, "fleet.ConditionChanged", correlation,
            """
            {"cluster":"\(clusterName)","namespace":"\(namespace)","object":"\(object)","type":"\(type)",\
            "status":"\(status)","reason":"\(reason)","message":"\(message)",\
            "lastTransitionTime":"\(timestamp())","observedGeneration":\(observedGeneration)}
            """)
    }

    private mutating func activityFields(workflow: StreamID, activity: String, kind: String) -> String {
        "\"workflow\":\"\(workflow)\",\"activity\":\"\(activity)\",\"kind\":\"\(kind)\",\"key\":\"\(workflow)/\(activity)\",\"cluster\":\"\(clusterName)\""
    }

    private mutating func makeRunID() -> EventID { EventID(high: random.next(), low: random.next()) }

    private mutating func timestamp() -> String {
        clockNanoseconds += 50_000_000 + Int64(random.below(2_000)) * 1_000_000
        return rfc3339(nanoseconds: clockNanoseconds)
    }

    private mutating func emit(_ stream: StreamID, _ type: String, _ correlation: EventID, _ json: String) {
        let payload = Array(json.utf8)
        let causation = pending.last.map(\.event.id)
        let id = EventID(high: random.next(), low: contentHash(type: type, payload: payload))
        let actor = type.hasPrefix("Activity") || type.hasPrefix("Workflow") ? "engine" : "controller:fleet"
        let event = ProposedEvent(
            id: id, type: type, schemaVersion: 1,
            metadata: EventMetadata(actor: actor, causationID: causation, correlationID: correlation),
            payload: payload)
        pending.append(GeneratedEvent(streamID: stream, event: event))
    }
}
