// Python tracebacks as vLLM 0.11 prints them (through its "(APIServer pid=N) " prefix)
// for the start failures the fixture imitates. Frame paths are those of a pip install.

/// Python traceback text for the failures vLLM reports at start.
enum VLLMTracebacks {
    static let entryFrames = [
        "Traceback (most recent call last):",
        "  File \"/usr/local/bin/vllm\", line 10, in <module>",
        "    sys.exit(main())",
        "             ^^^^^^",
        "  File \"\(VLLM.sitePackages)/vllm/entrypoints/cli/main.py\", line 54, in main",
        "    args.dispatch_function(args)",
        "  File \"\(VLLM.sitePackages)/vllm/entrypoints/cli/serve.py\", line 57, in cmd",
        "    uvloop.run(run_server(args))",
        "  File \"\(VLLM.sitePackages)/uvloop/__init__.py\", line 109, in run",
        "    return __asyncio.run(",
        "           ^^^^^^^^^^^^^^",
        "  File \"/usr/lib/python3.12/asyncio/runners.py\", line 195, in run",
        "    return runner.run(main)",
        "           ^^^^^^^^^^^^^^^^",
        "  File \"/usr/lib/python3.12/asyncio/runners.py\", line 118, in run",
        "    return self._loop.run_until_complete(task)",
        "           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
        "  File \"uvloop/loop.pyx\", line 1518, in uvloop.loop.Loop.run_until_complete",
        "  File \"\(VLLM.sitePackages)/uvloop/__init__.py\", line 61, in wrapper",
        "    return await main",
        "           ^^^^^^^^^^",
    ]

    /// create_server_socket's sock.bind failing: "OSError: [Errno 98] Address already in use".
    static func bindFailure(_ failure: APISocket.Failure) -> [String] {
        entryFrames + [
            "  File \"\(VLLM.sitePackages)/vllm/entrypoints/openai/api_server.py\", line 1884, in run_server",
            "    listen_address, sock = setup_server(args)",
            "                           ^^^^^^^^^^^^^^^^^^",
            "  File \"\(VLLM.sitePackages)/vllm/entrypoints/openai/api_server.py\", line 1863, in setup_server",
            "    sock = create_server_socket(sock_addr)",
            "           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
            "  File \"\(VLLM.sitePackages)/vllm/entrypoints/openai/api_server.py\", line 1808, in create_server_socket",
            "    sock.bind(addr)",
            failure.pythonException,
        ]
    }

    /// An unknown Hugging Face model id: the hub's 404, then transformers' OSError.
    static func unknownModel(_ model: String) -> [String] {
        let url = "https://huggingface.co/\(model)/resolve/main/config.json"
        return [
            "Traceback (most recent call last):",
            "  File \"\(VLLM.sitePackages)/huggingface_hub/utils/_http.py\", line 409, in hf_raise_for_status",
            "    response.raise_for_status()",
            "  File \"\(VLLM.sitePackages)/requests/models.py\", line 1026, in raise_for_status",
            "    raise HTTPError(http_error_msg, response=self)",
            "requests.exceptions.HTTPError: 401 Client Error: Unauthorized for url: \(url)",
            "",
            "The above exception was the direct cause of the following exception:",
            "",
            "Traceback (most recent call last):",
            "  File \"\(VLLM.sitePackages)/transformers/utils/hub.py\", line 479, in cached_files",
            "    hf_hub_download(",
            "  File \"\(VLLM.sitePackages)/huggingface_hub/file_download.py\", line 1010, in hf_hub_download",
            "    return _hf_hub_download_to_cache_dir(",
            "  File \"\(VLLM.sitePackages)/huggingface_hub/utils/_http.py\", line 459, in hf_raise_for_status",
            "    raise _format(RepositoryNotFoundError, message, response) from e",
            "huggingface_hub.errors.RepositoryNotFoundError: 401 Client Error. (Request ID: Root=1-6745f0c1-2b1e3f4a5c6d7e8f90a1b2c3)",
            "",
            "Repository Not Found for url: \(url).",
            "Please make sure you specified the correct `repo_id` and `repo_type`.",
            "If you are trying to access a private or gated repo, make sure you are authenticated. For more details, see https://huggingface.co/docs/huggingface_hub/authentication",
            "Invalid username or password.",
            "",
            "During handling of the above exception, another exception occurred:",
            "",
        ] + entryFrames + [
            "  File \"\(VLLM.sitePackages)/vllm/entrypoints/openai/api_server.py\", line 1885, in run_server",
            "    await run_server_worker(listen_address, sock, args, **uvicorn_kwargs)",
            "  File \"\(VLLM.sitePackages)/vllm/entrypoints/openai/api_server.py\", line 1901, in run_server_worker",
            "    async with build_async_engine_client(",
            "  File \"\(VLLM.sitePackages)/vllm/entrypoints/openai/api_server.py\", line 180, in build_async_engine_client_from_engine_args",
            "    vllm_config = engine_args.create_engine_config(usage_context=usage_context)",
            "  File \"\(VLLM.sitePackages)/vllm/engine/arg_utils.py\", line 1150, in create_engine_config",
            "    model_config = self.create_model_config()",
            "  File \"\(VLLM.sitePackages)/vllm/transformers_utils/config.py\", line 501, in get_config",
            "    config_dict, _ = PretrainedConfig.get_config_dict(",
            "  File \"\(VLLM.sitePackages)/transformers/utils/hub.py\", line 511, in cached_files",
            "    raise OSError(",
            "OSError: \(model) is not a local folder and is not a valid model identifier listed on 'https://huggingface.co/models'",
        ]
    }

    /// What a crashing API server leaves behind (FAKE_CRASH_AFTER with an exit code).
    static func crash() -> [String] {
        entryFrames + [
            "  File \"\(VLLM.sitePackages)/vllm/v1/engine/core_client.py\", line 895, in get_output_async",
            "    raise self._format_exception(outputs) from None",
            "RuntimeError: CUDA error: an illegal memory access was encountered",
        ]
    }
}
