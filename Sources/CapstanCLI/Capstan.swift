import ArgumentParser
import CapstanSupport
import Foundation

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

            Exit codes: 0 success; 1 failure (the command could not run, refused input, `log verify` \
            found damage); 2 invalid command line (with a usage message).
            """,
        version: CapstanBuild.version,
        subcommands: [
            Apply.self, Delete.self, Get.self, Describe.self, HistoryCommand.self, WorkflowCommand.self, Replay.Command.self,
            Upgrade.self, Demo.self, Log.self, Serve.self,
        ]
    )

    /// ArgumentParser's `main`, with its usage errors (exit code 64) mapped to 2, the
    /// convention of kubectl and POSIX utilities that the help documents.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            if exitCode(for: error) == .validationFailure {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(ExitCodes.usage.rawValue)
            }
            exit(withError: error)
        }
    }
}
