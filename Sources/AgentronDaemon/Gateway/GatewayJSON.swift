import AgentronCore
import AgentronJSON

/// The gateway's JSON: OpenAI's list and error shapes, so every OpenAI client reads them.
enum GatewayJSON {
    /// `GET /v1/models`: every name a request may carry, with the server it reaches and
    /// that server's state (an addition OpenAI clients ignore).
    static func models(_ routing: GatewayRouting) -> String {
        var entries: [String] = []
        var seen: Set<String> = []
        for route in routing.routes {
            for name in route.names where seen.insert(name).inserted {
                entries.append(
                    "{\"id\":\(JSONRender.quote(name)),\"object\":\"model\",\"created\":0,\"owned_by\":\"agentron\","
                        + "\"server\":\(JSONRender.quote(route.server)),\"state\":\"\(route.state.rawValue)\"}")
            }
        }
        return "{\"object\":\"list\",\"data\":[" + entries.joined(separator: ",") + "]}"
    }

    /// `{"error": {"message", "type", "param", "code"}}`, OpenAI's error shape.
    static func error(_ message: String, type: String, code: String, param: String? = nil) -> String {
        "{\"error\":{\"message\":\(JSONRender.quote(message)),\"type\":\(JSONRender.quote(type)),"
            + "\"param\":\(param.map(JSONRender.quote) ?? "null"),\"code\":\(JSONRender.quote(code))}}"
    }
}

/// The gateway's refusals, each one line saying what to do.
enum GatewayError {
    static let unauthorized = GatewayJSON.error(
        "this gateway needs its key: send Authorization: Bearer <AGENTRON_GATEWAY_API_KEY>",
        type: "invalid_request_error", code: "invalid_api_key")

    static func tooLarge(limit: Int) -> String {
        GatewayJSON.error(
            "the request body is larger than the gateway's limit of \(limit >> 20) MiB",
            type: "invalid_request_error", code: "request_too_large")
    }

    static let notJSON = GatewayJSON.error(
        "the request body must be a JSON object with a \"model\"",
        type: "invalid_request_error", code: "invalid_body")

    static let noModel = GatewayJSON.error(
        "the request has no \"model\"; name a model from GET /v1/models",
        type: "invalid_request_error", code: "model_required", param: "model")

    static func noRoute(method: String, path: String) -> String {
        GatewayJSON.error(
            "no route for \(method) \(path.clippedForMessage); the gateway serves POST /v1/... with a model, and GET /v1/models",
            type: "invalid_request_error", code: "not_found")
    }

    static func unknownModel(_ model: String) -> String {
        GatewayJSON.error(
            "the model \"\(model.clippedForMessage)\" does not exist here; GET /v1/models lists the models this gateway serves",
            type: "invalid_request_error", code: "model_not_found", param: "model")
    }

    static func ambiguous(_ model: String, servers: [String]) -> String {
        GatewayJSON.error(
            "the model \"\(model.clippedForMessage)\" could mean the servers \(servers.joined(separator: ", ")); send one server's name as the model",
            type: "invalid_request_error", code: "model_ambiguous", param: "model")
    }

    static func tooManyHeld(_ model: String, limit: Int) -> String {
        GatewayJSON.error(
            "\(limit) requests already wait for \"\(model.clippedForMessage)\" to start; retry in a few seconds",
            type: "server_error", code: "model_busy", param: "model")
    }

    static func unreachable(_ server: String, address: String, error: String) -> String {
        GatewayJSON.error(
            "the server \(server) does not answer on \(address) (\(error)); see `agentron logs \(server)`",
            type: "server_error", code: "upstream_unavailable")
    }

    static func closedEarly(_ server: String) -> String {
        GatewayJSON.error(
            "the server \(server) closed the connection before answering; see `agentron logs \(server)`",
            type: "server_error", code: "upstream_closed")
    }
}
