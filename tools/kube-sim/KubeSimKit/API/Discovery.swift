/// The discovery and OpenAPI documents kubectl and client libraries read before acting.
///
/// Legacy (unaggregated) discovery only: kubectl asks for the aggregated
/// `APIGroupDiscoveryList` first and falls back when the answer is plain `application/json`.
enum Discovery {
    static func version(_ gitVersion: String) -> JSON {
        let parts = gitVersion.dropFirst().split(separator: ".")
        return [
            "major": .string(parts.count > 0 ? String(parts[0]) : "1"),
            "minor": .string(parts.count > 1 ? String(parts[1]) : "0"),
            "gitVersion": .string(gitVersion), "gitCommit": "kube-sim", "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z", "goVersion": "kube-sim", "compiler": "swift",
            "platform": "linux/amd64",
        ]
    }

    static func coreVersions(serverAddress: String) -> JSON {
        [
            "kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [["clientCIDR": "0.0.0.0/0", "serverAddress": .string(serverAddress)]],
        ]
    }

    static func group(_ group: String, versions: [String]) -> JSON {
        let entries: [JSON] = versions.map { ["groupVersion": .string("\(group)/\($0)"), "version": .string($0)] }
        return [
            "kind": "APIGroup", "apiVersion": "v1", "name": .string(group), "versions": .array(entries),
            "preferredVersion": entries.first ?? .null,
        ]
    }

    static func groups(_ catalog: ResourceCatalog) -> JSON {
        var versionsByGroup: [String: [String]] = [:]
        var order: [String] = []
        for (group, version) in catalog.groupVersions where !group.isEmpty {
            if versionsByGroup[group] == nil { order.append(group) }
            versionsByGroup[group, default: []].append(version)
        }
        var groups: [JSON] = order.map { group($0, versions: versionsByGroup[$0]!) }
        for index in groups.indices {
            groups[index]["kind"] = nil
            groups[index]["apiVersion"] = nil
        }
        return ["kind": "APIGroupList", "apiVersion": "v1", "groups": .array(groups)]
    }

    static func resourceList(_ catalog: ResourceCatalog, group: String, version: String) -> JSON? {
        let resources = catalog.resources(group: group, version: version)
        guard !resources.isEmpty else { return nil }
        var entries: [JSON] = []
        for resource in resources.sorted(by: { $0.name < $1.name }) {
            var entry: JSON = [
                "name": .string(resource.name), "singularName": .string(resource.singular),
                "namespaced": .bool(resource.namespaced), "kind": .string(resource.kind),
                "verbs": .array(ResourceType.allVerbs),
            ]
            if !resource.shortNames.isEmpty { entry["shortNames"] = .array(resource.shortNames.map(JSON.string)) }
            if !resource.categories.isEmpty { entry["categories"] = .array(resource.categories.map(JSON.string)) }
            entries.append(entry)
            if resource.hasStatus {
                entries.append([
                    "name": .string("\(resource.name)/status"), "singularName": "",
                    "namespaced": .bool(resource.namespaced), "kind": .string(resource.kind),
                    "verbs": ["get", "patch", "update"],
                ])
            }
            if resource == .pods {
                entries.append([
                    "name": "pods/eviction", "singularName": "", "namespaced": true, "group": "policy",
                    "version": "v1", "kind": "Eviction", "verbs": ["create"],
                ])
            }
        }
        return [
            "kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": .string(group.isEmpty ? version : "\(group)/\(version)"), "resources": .array(entries),
        ]
    }

    // MARK: OpenAPI v3

    /// `/openapi/v3`: one entry per group version, each pointing at its document.
    static func openAPIRoot(_ catalog: ResourceCatalog) -> JSON {
        var paths: [String: JSON] = [:]
        for (group, version) in catalog.groupVersions {
            let path = group.isEmpty ? "api/\(version)" : "apis/\(group)/\(version)"
            paths[path] = ["serverRelativeURL": .string("/openapi/v3/\(path)?hash=kube-sim-\(version)")]
        }
        return ["paths": .object(paths)]
    }

    /// One group version's OpenAPI v3 document: a path per object with its verbs, each PATCH
    /// tagged with the GVK and the `fieldValidation` parameter, which is what kubectl's
    /// field-validation check looks for before it trusts the server to validate
    /// (`kubectl apply --server-side` with the default `--validate=strict`). Schemas are
    /// open objects: kube-sim does not validate fields.
    static func openAPIDocument(_ catalog: ResourceCatalog, group: String, version: String) -> JSON? {
        let resources = catalog.resources(group: group, version: version)
        guard !resources.isEmpty else { return nil }
        var paths: [String: JSON] = [:]
        var schemas: [String: JSON] = [:]
        let root = group.isEmpty ? "/api/\(version)" : "/apis/\(group)/\(version)"
        let queryParameters: [JSON] = ["dryRun", "fieldManager", "fieldValidation", "force", "pretty"].map {
            ["name": .string($0), "in": "query", "schema": ["type": "string"], "uniqueItems": true]
        }
        for resource in resources {
            let gvk: JSON = ["group": .string(group), "version": .string(version), "kind": .string(resource.kind)]
            let schemaName = "\(group.isEmpty ? "io.k8s.api.core" : group).\(version).\(resource.kind)"
            schemas[schemaName] = [
                "type": "object", "x-kubernetes-group-version-kind": [gvk],
                "x-kubernetes-preserve-unknown-fields": true,
                "properties": [
                    "apiVersion": ["type": "string"], "kind": ["type": "string"],
                    "metadata": ["type": "object", "x-kubernetes-preserve-unknown-fields": true],
                ],
            ]
            let reference: JSON = ["$ref": .string("#/components/schemas/\(schemaName)")]
            func operation(_ id: String, body: Bool) -> JSON {
                var operation: JSON = [
                    "operationId": .string(id), "x-kubernetes-group-version-kind": gvk,
                    "x-kubernetes-action": .string(id.hasPrefix("patch") ? "patch" : id.hasPrefix("read") ? "get" : "put"),
                    "parameters": .array(queryParameters),
                    "responses": ["200": ["description": "OK", "content": ["application/json": ["schema": reference]]]],
                ]
                if body {
                    operation["requestBody"] = ["content": ["application/json": ["schema": reference]], "required": true]
                }
                return operation
            }
            let objectPath = resource.namespaced
                ? "\(root)/namespaces/{namespace}/\(resource.name)/{name}" : "\(root)/\(resource.name)/{name}"
            paths[objectPath] = [
                "get": operation("read\(resource.kind)", body: false),
                "put": operation("replace\(resource.kind)", body: true),
                "patch": operation("patch\(resource.kind)", body: true),
            ]
            if resource.hasStatus {
                paths["\(objectPath)/status"] = [
                    "patch": operation("patch\(resource.kind)Status", body: true),
                    "put": operation("replace\(resource.kind)Status", body: true),
                ]
            }
        }
        return [
            "openapi": "3.0.0", "info": ["title": "Kubernetes (kube-sim)", "version": "v1"],
            "paths": .object(paths), "components": ["schemas": .object(schemas)],
        ]
    }
}
