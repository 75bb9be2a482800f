import ArgumentParser

@main
struct Capstan: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "capstan",
        abstract: "Run and inspect durable lifecycle workflows for Kubernetes fleets.",
        discussion: """
            Capstan keeps every lifecycle event of a fleet (machines provisioned, Kubernetes \
            versions changed, conditions, workflow activities) in an append-only LMDB log in \
            the data directory. Read-only commands answer while an engine writes.

            Examples:
              capstan demo                      the whole product in a minute: kube-sim, a fleet, serve, an upgrade through a crash
              capstan log demo                  append a realistic batch of generated events, verify, print stats
              capstan log verify                check every checksum and index of ./capstan-data
              capstan log export --stream cluster/prod-eu-west-3-k7q0

            Set CAPSTAN_LOG_LEVEL=info (or debug) to see the log library's own messages on \
            standard error.

            Exit codes: 0 success; 1 `log verify` found damage; 2 the command could not run \
            (missing or unreadable data directory, I/O error); 64 invalid command line.
            """,
        version: "0.1.0",
        subcommands: [Apply.self, Delete.self, Get.self, Upgrade.self, Demo.self, Log.self, Serve.self]
    )
}
