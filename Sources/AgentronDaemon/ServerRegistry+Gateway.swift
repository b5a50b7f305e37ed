import AgentronConfig
import AgentronCore

/// What the gateway's cold path gets from the registry: the server a model names, started
/// as `up` starts it, once it can take requests; or why not, as the HTTP status and
/// OpenAI-shaped error to answer with.
enum GatewayDemandResult: Sendable {
    case ready(GatewayRoute)
    case refused(status: Int, json: String, retryAfter: Int?)
}

extension ServerRegistry {
    /// A request named `model` and no server can take it now: find the server or the
    /// profile it names, start it (a start request, exactly as `up`: concurrent demands
    /// for one server make one start, since a start of a server already starting is
    /// nothing new), and wait until it settles (docs/gateway.md, "On demand").
    func demand(_ model: String) async -> GatewayDemandResult {
        let profile: Profile
        switch router.current.resolve(model) {
        case .route(let route):
            guard let supervisor = supervisors[route.server] else { return await demandFromProfiles(model) }
            profile = await supervisor.profile
        case .ambiguous(let servers):
            return .refused(status: 400, json: GatewayError.ambiguous(model, servers: servers), retryAfter: nil)
        case .unknown:
            return await demandFromProfiles(model)
        }
        return await startAndWait(profile)
    }

    private func demandFromProfiles(_ model: String) async -> GatewayDemandResult {
        let profiles = gatewayProfiles()
        let named = profiles.filter { $0.name == model }
        let matches = named.isEmpty ? profiles.filter { $0.model == model || $0.aliasList.contains(model) } : named
        guard let profile = matches.first else {
            return .refused(status: 404, json: GatewayError.unknownModel(model), retryAfter: nil)
        }
        guard matches.count == 1 else {
            return .refused(
                status: 400, json: GatewayError.ambiguous(model, servers: matches.map(\.name).sorted()),
                retryAfter: nil)
        }
        return await startAndWait(profile)
    }

    /// How much longer than a profile's startup timeout a held request waits: the settle
    /// comes from the state machine, this only bounds a lost one.
    static let demandSlack: Duration = .seconds(30)

    private func startAndWait(_ profile: Profile) async -> GatewayDemandResult {
        func startFailed(_ message: String) -> GatewayDemandResult {
            .refused(
                status: 503,
                json: GatewayJSON.error(message, type: "server_error", code: "model_start_failed", param: "model"),
                retryAfter: nil)
        }
        do {
            _ = try await start(profile)
        } catch {
            return startFailed(error.message)
        }
        let info: ServerInfo
        do {
            info = try await wait(profile.name, timeout: profile.startupTimeout.duration + Self.demandSlack)
        } catch {
            return startFailed(error.message)
        }
        guard info.state == .ready || info.state == .unhealthy, info.port != nil else {
            let reason = info.reason.map { ": \($0)" } ?? " (it is \(info.state.rawValue))"
            return .refused(
                status: 503,
                json: GatewayJSON.error(
                    "the server \(profile.name) did not start\(reason); see `agentron logs \(profile.name)`",
                    type: "server_error", code: "model_start_failed", param: "model"),
                retryAfter: info.state == .starting || info.state == .backoff ? 5 : nil)
        }
        return .ready(
            GatewayRoute(
                server: profile.name, model: profile.model, aliases: profile.aliasList, servedModel: info.servedModel,
                host: profile.host, port: info.port, apiKey: profile.engine.driver.apiKey(profile), state: info.state,
                reason: info.reason))
    }

    /// The profiles a request may start: the user's and the system's on the search path.
    /// Built-in examples are left out until started here (then they have a server), so a
    /// client listing models never sets off a download nobody asked for.
    func gatewayProfiles() -> [Profile] {
        profileCatalog.entries().filter { $0.origin != .builtin }.compactMap(\.profile)
    }

    /// Every server, then every profile that has none yet (as stopped).
    func gatewayRouting() -> GatewayRouting {
        var routes = router.current.routes
        let known = Set(routes.map(\.server))
        for profile in gatewayProfiles() where !known.contains(profile.name) {
            routes.append(
                GatewayRoute(
                    server: profile.name, model: profile.model, aliases: profile.aliasList, servedModel: profile.model,
                    host: profile.host, port: nil, apiKey: nil, state: .stopped, reason: nil))
        }
        return GatewayRouting(routes: routes)
    }

    /// `GET /v1/models`: every routable name in OpenAI's list shape.
    func gatewayModels() -> String {
        GatewayJSON.models(gatewayRouting())
    }

    /// `GET /v1/gateway` of the control API (`agentron gateway`).
    func gatewayStatus() -> GatewayStatus {
        let counts = metrics.counts()
        return GatewayStatus(
            address: gatewayState?.address, listening: gatewayState != nil && gatewayState?.error == nil,
            error: gatewayState?.error, keyRequired: gatewayKeyRequired, requests: counts.requests,
            inFlight: activity.inFlight, held: held.total, starts: counts.starts,
            routes: gatewayRouting().routes.map {
                GatewayStatus.Route(server: $0.server, names: $0.names, state: $0.state)
            })
    }
}

extension ServerRegistry {
    /// What a client needs to use `name` (`agentron env`): a server's own endpoint, served
    /// name and key; else, with the gateway listening, a model the gateway routes (a
    /// profile or alias not up yet starts on the first request).
    func connection(_ name: String) async throws(APIError) -> ServerConnection {
        if let supervisor = supervisors[name] {
            let info = await supervisor.info(detailed: false)
            guard let endpoint = info.endpoint, info.state == .ready || info.state == .unhealthy else {
                throw APIError(
                    .conflict,
                    "\(name) is \(info.state.rawValue), not serving; `agentron up \(name)` starts it"
                        + (gatewayListening != nil ? ", or use the gateway, which starts it on the first request" : ""))
            }
            let profile = await supervisor.profile
            return ServerConnection(
                name: name, baseUrl: endpoint + "/v1", model: info.servedModel,
                apiKey: profile.engine.driver.apiKey(profile), via: "server")
        }
        if let gateway = gatewayListening, case .route = gatewayRouting().resolve(name) {
            return ServerConnection(
                name: name, baseUrl: "http://\(gateway.address)/v1", model: name, apiKey: gateway.apiKey,
                via: "gateway")
        }
        throw APIError(
            .notFound,
            "no server named \(name)\(gatewayListening == nil ? "" : ", and no profile or alias the gateway routes by that name"); see `agentron ps` and `agentron profiles ls`"
        )
    }
}
