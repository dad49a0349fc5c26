"""Huawei's official DataArts Fabric SDKs against the served emulator: the client is the judge.

``huaweicloudsdkdataartsfabric`` (control plane) and ``huaweicloudsdkdataartsfabricep``
(service instances) drive a uvicorn-served emulator with ``BasicCredentials(ak,
sk, project_id)``: every request is AK/SK-signed by the SDK's own signer and
verified by the emulator, and every answer must parse into the SDK's response
models with the fields filled. Where the two ever disagreed, the emulator was
changed to match the SDK.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, TypeVar

import pytest
import uvicorn
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkdataartsfabric.v1 import DataArtsFabricClient
from huaweicloudsdkdataartsfabric.v1 import model as fabric
from huaweicloudsdkdataartsfabricep.v1 import DataArtsFabricEpClient
from huaweicloudsdkdataartsfabricep.v1 import model as ep

from reconciler.emulators import EmulatorConfig, build_app

AK = "HPUAOFFICIALCLIENT01"
SK = "official-client-sk-7f3e2d1c"
PROJECT = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
MU = "mu.llama3.8b"
STARTUP_SECONDS = 10.0
POLLS = 20

T = TypeVar("T")


@pytest.fixture(scope="module")
def served() -> Iterator[str]:
    """The emulator on 127.0.0.1 and a free port, in a background thread, knowing AK/SK."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = EmulatorConfig(provision_seconds=0, fabric_ak=AK, fabric_sk=SK)
    server = uvicorn.Server(
        uvicorn.Config(build_app(config), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="fabric-emulator", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_SECONDS
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started, f"the emulator did not start within {STARTUP_SECONDS:g}s"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(STARTUP_SECONDS)
        assert not thread.is_alive(), "the emulator did not shut down"


def control_client(url: str, ak: str = AK, sk: str = SK) -> DataArtsFabricClient:
    credentials = BasicCredentials(ak, sk, PROJECT)
    client: DataArtsFabricClient = (
        DataArtsFabricClient.new_builder().with_credentials(credentials).with_endpoints([url]).build()
    )
    return client


def ep_client(url: str) -> DataArtsFabricEpClient:
    credentials = BasicCredentials(AK, SK, PROJECT)
    client: DataArtsFabricEpClient = (
        DataArtsFabricEpClient.new_builder().with_credentials(credentials).with_endpoints([url]).build()
    )
    return client


@pytest.fixture
def control(served: str) -> Iterator[DataArtsFabricClient]:
    client = control_client(served)
    yield client
    client.close()


@pytest.fixture
def serving(served: str) -> Iterator[DataArtsFabricEpClient]:
    client = ep_client(served)
    yield client
    client.close()


def poll(read: Callable[[], T], done: Callable[[T], bool]) -> T:
    """Read until ``done`` (provision_seconds=0: the next read settles); bounded."""
    for _ in range(POLLS):
        answer = read()
        if done(answer):
            return answer
        time.sleep(0.01)
    raise AssertionError(f"not settled after {POLLS} reads: {answer}")


def filled(obj: Any, *fields: str) -> None:
    missing = [f for f in fields if getattr(obj, f) in (None, "")]
    assert not missing, f"{type(obj).__name__} lacks {missing}: {obj}"


# ---------------------------------------------------------------- the whole life of each kind


def test_workspaces_endpoints_models_and_instances_through_the_official_clients(
    control: DataArtsFabricClient, serving: DataArtsFabricEpClient
) -> None:
    # -- workspace: create, list, update
    created = control.create_workspace(
        fabric.CreateWorkspaceRequest(
            body=fabric.CreateWorkspaceRequestInput(name="sdk ws", description="one")
        )
    )
    assert isinstance(created, fabric.CreateWorkspaceResponse)
    filled(created, "id", "name", "create_time", "create_domain_name", "access_url", "x_request_id")
    assert isinstance(created.create_time, datetime)
    ws = created.id
    listed = control.list_workspaces(fabric.ListWorkspacesRequest(name="sdk ws", limit=10, offset=0))
    assert listed.total == 1 and isinstance(listed.workspaces[0], fabric.Workspace)
    assert (listed.workspaces[0].id, listed.workspaces[0].description) == (ws, "one")
    renamed = control.update_workspace(
        fabric.UpdateWorkspaceRequest(
            workspace_id=ws, body=fabric.UpdateWorkspaceRequestInput(description="two")
        )
    )
    assert isinstance(renamed, fabric.UpdateWorkspaceResponse) and renamed.description == "two"

    # -- endpoint: create, list, show (until RUNNING), update, show
    reserved = fabric.ReservedResource(mu=fabric.ResourceDemand(spec_code=MU, min=1, max=4))
    endpoint = control.create_endpoint(
        fabric.CreateEndpointRequest(
            workspace_id=ws,
            body=fabric.EndpointInput(name="sdk-ep", type="inference", reserved_resource=reserved),
        )
    )
    assert isinstance(endpoint, fabric.CreateEndpointResponse)
    filled(endpoint, "id", "name", "type", "status", "create_time", "owner", "reserved_resource", "urls")
    assert (endpoint.type, endpoint.status, endpoint.reserved_resource.mu.max) == ("inference", "CREATING", 4)
    ep_id = endpoint.id
    endpoints = control.list_endpoints(fabric.ListEndpointsRequest(workspace_id=ws, name="sdk-ep"))
    assert endpoints.total == 1 and isinstance(endpoints.endpoints[0], fabric.EndpointBriefInfo)
    show = fabric.ShowEndpointRequest(workspace_id=ws, endpoint_id=ep_id)
    running = poll(lambda: control.show_endpoint(show), lambda r: r.status == "RUNNING")
    assert isinstance(running, fabric.ShowEndpointResponse)
    filled(running, "id", "owner", "urls", "update_time")
    assert running.owner.domain_name and running.urls[0].address.endswith(ep_id)
    updated = control.update_endpoint(
        fabric.UpdateEndpointRequest(
            workspace_id=ws, endpoint_id=ep_id, body=fabric.UpdateEndpointRequestBody(description="scaled")
        )
    )
    assert isinstance(updated, fabric.UpdateEndpointResponse) and updated.status == "UPDATING"
    poll(lambda: control.show_endpoint(show), lambda r: r.status == "RUNNING" and r.description == "scaled")

    # -- model: create, list, update (a new version), list versions
    config = fabric.ModelConfig(
        llm_model_config=fabric.LlmModelConfig(base_model_type="llama3", model_path="obs://models/v1")
    )
    model = control.create_model_definition(
        fabric.CreateModelDefinitionRequest(
            workspace_id=ws,
            body=fabric.CreateModelInput(
                name="sdk-llm", type="LLM_MODEL", version=fabric.ModelVersionInput(name="v1", config=config)
            ),
        )
    )
    assert isinstance(model, fabric.CreateModelDefinitionResponse)
    filled(model, "id", "version_id")
    models = control.list_models(fabric.ListModelsRequest(workspace_id=ws, id=model.id))
    assert models.total == 1 and isinstance(models.models[0], fabric.ModelInfo)
    shown_model = models.models[0]
    filled(shown_model, "name", "type", "create_time", "current_version", "create_user", "update_user")
    assert shown_model.current_version.id == model.version_id
    assert shown_model.current_version.config.llm_model_config.model_path == "obs://models/v1"
    filled(shown_model.current_version, "id", "name", "create_time", "create_user")
    config.llm_model_config.model_path = "obs://models/v2"
    changed = control.update_model_definition(
        fabric.UpdateModelDefinitionRequest(
            workspace_id=ws,
            model_id=model.id,
            body=fabric.UpdateModelInput(
                description="second", version=fabric.ModelVersionInput(name="v2", config=config)
            ),
        )
    )
    assert isinstance(changed, fabric.UpdateModelDefinitionResponse)
    assert (changed.description, changed.current_version.name) == ("second", "v2")
    versions = control.list_model_versions(
        fabric.ListModelVersionsRequest(workspace_id=ws, model_id=model.id)
    )
    assert versions.total == 2 and all(isinstance(v, fabric.ModelVersionInfo) for v in versions.versions)
    assert [v.name for v in versions.versions] == ["v1", "v2"]
    only = fabric.ListModelVersionsRequest(workspace_id=ws, model_id=model.id, version_id=model.version_id)
    assert [v.name for v in control.list_model_versions(only).versions] == ["v1"]

    # -- service instance: deploy, list, show (until RUNNING), update, delete
    resource = ep.ResourceDemand(min=1, max=2, spec_code=MU)
    deployed = serving.deploy_service_instance(
        ep.DeployServiceInstanceRequest(
            workspace_id=ws,
            body=ep.ServiceInstanceInput(
                source=ep.SourceRef(id=model.id, version_id=model.version_id),
                name="sdk-svc",
                description="serves",
                endpoint_id=ep_id,
                config=ep.ServiceInstanceConfig(
                    model_instance_config=ep.ModelServiceInstanceConfig(resource)
                ),
            ),
        )
    )
    assert isinstance(deployed, ep.DeployServiceInstanceResponse)
    filled(deployed, "id")
    instances = serving.list_services_instances(
        ep.ListServicesInstancesRequest(workspace_id=ws, name="sdk-svc")
    )
    assert instances.total == 1 and isinstance(instances.service_instances[0], ep.ServiceInstanceBriefInfo)
    brief = instances.service_instances[0]
    filled(brief, "id", "name", "endpoint_id", "status", "create_time", "create_user", "type", "source")
    assert (brief.source.id, brief.type) == (model.id, "LLM_MODEL")
    detail = ep.ShowServiceInstanceDetailRequest(workspace_id=ws, instance_id=deployed.id)
    instance = poll(lambda: serving.show_service_instance_detail(detail), lambda r: r.status == "RUNNING")
    assert isinstance(instance, ep.ShowServiceInstanceDetailResponse)
    filled(instance, "url", "config", "update_user", "duration")
    assert instance.config.model_instance_config.resource.max == 2
    assert instance.url.address.endswith(f"{deployed.id}/invocations")
    resized = serving.update_service_instance(
        ep.UpdateServiceInstanceRequest(
            workspace_id=ws,
            instance_id=deployed.id,
            body=ep.UpdateServiceInstanceInput(
                description="bigger",
                config=ep.UpdateServiceInstanceConfig(
                    model_instance_config=ep.UpdateModelServiceInstanceConfig(ep.BaseDemand(min=1, max=3))
                ),
            ),
        )
    )
    assert isinstance(resized, ep.UpdateServiceInstanceResponse) and resized.id == deployed.id
    settled = poll(
        lambda: serving.show_service_instance_detail(detail),
        lambda r: r.status == "RUNNING" and r.config.model_instance_config.resource.max == 3,
    )
    assert settled.description == "bigger"
    gone = serving.delete_service_instance(
        ep.DeleteServiceInstanceRequest(workspace_id=ws, instance_id=deployed.id)
    )
    assert isinstance(gone, ep.DeleteServiceInstanceResponse) and gone.status_code == 204
    poll(
        lambda: serving.list_services_instances(ep.ListServicesInstancesRequest(workspace_id=ws)),
        lambda r: r.total == 0,
    )

    # -- teardown through the SDK: model, endpoint, workspace
    cleaned = control.cleanup_model(fabric.CleanupModelRequest(workspace_id=ws, model_id=model.id))
    assert isinstance(cleaned, fabric.CleanupModelResponse) and cleaned.status_code == 204
    deleted = control.delete_endpoint(fabric.DeleteEndpointRequest(workspace_id=ws, endpoint_id=ep_id))
    assert isinstance(deleted, fabric.DeleteEndpointResponse) and deleted.id == ep_id
    poll(
        lambda: control.list_endpoints(fabric.ListEndpointsRequest(workspace_id=ws)),
        lambda r: r.total == 0,
    )
    dropped = control.delete_workspace(fabric.DeleteWorkspaceRequest(workspace_id=ws))
    assert isinstance(dropped, fabric.DeleteWorkspaceResponse) and dropped.status_code == 204
    assert control.list_workspaces(fabric.ListWorkspacesRequest(id=ws)).total == 0


def test_specs_and_sorting_as_the_sdk_spells_them(control: DataArtsFabricClient) -> None:
    specs = control.list_specs(fabric.ListSpecsRequest(spec_types=["MU"]))
    assert specs.total >= 1 and all(isinstance(s, fabric.Spec) for s in specs.spec_codes)
    assert {s.spec_type for s in specs.spec_codes} == {"MU"} and MU in {s.spec_code for s in specs.spec_codes}

    ws = control.create_workspace(
        fabric.CreateWorkspaceRequest(body=fabric.CreateWorkspaceRequestInput(name="sorting"))
    ).id
    config = fabric.ModelConfig(llm_model_config=fabric.LlmModelConfig(base_model_type="b", model_path="p"))
    for name in ("beta", "alpha"):
        version = fabric.ModelVersionInput(name="v1", config=config)
        body = fabric.CreateModelInput(name=name, type="LLM_MODEL", version=version)
        control.create_model_definition(fabric.CreateModelDefinitionRequest(workspace_id=ws, body=body))
    by_name = fabric.ListModelsRequest(workspace_id=ws, sort_by="NAME", order_by="ASC")
    assert [m.name for m in control.list_models(by_name).models] == ["alpha", "beta"]


# ---------------------------------------------------------------- failures, as the platform fails


def test_wrong_sk_fails_401_apig_0301_without_showing_the_sk(served: str) -> None:
    client = control_client(served, sk="not-the-right-secret")
    try:
        with pytest.raises(ClientRequestException) as caught:
            client.list_workspaces(fabric.ListWorkspacesRequest())
    finally:
        client.close()
    error = caught.value
    assert (error.status_code, error.error_code) == (401, "APIG.0301")
    assert "verify aksk signature fail" in error.error_msg
    assert "not-the-right-secret" not in str(error) and SK not in str(error)
    assert error.request_id


def test_unknown_ak_fails_401_apig_0301(served: str) -> None:
    client = control_client(served, ak="HPUANOBODYKNOWSTHIS")
    try:
        with pytest.raises(ClientRequestException) as caught:
            client.list_workspaces(fabric.ListWorkspacesRequest())
    finally:
        client.close()
    assert (caught.value.status_code, caught.value.error_code) == (401, "APIG.0301")
    assert "ak not exist" in caught.value.error_msg


def test_platform_errors_reach_the_sdk_with_code_and_message(control: DataArtsFabricClient) -> None:
    with pytest.raises(ClientRequestException) as missing_workspace:
        control.list_endpoints(fabric.ListEndpointsRequest(workspace_id="no-such-workspace"))
    assert (missing_workspace.value.status_code, missing_workspace.value.error_code) == (
        400,
        "dataartsfabric.00010003",
    )
    ws = control.create_workspace(
        fabric.CreateWorkspaceRequest(body=fabric.CreateWorkspaceRequestInput(name="errors"))
    ).id
    with pytest.raises(ClientRequestException) as missing_endpoint:
        control.show_endpoint(fabric.ShowEndpointRequest(workspace_id=ws, endpoint_id="no-such-endpoint"))
    assert (missing_endpoint.value.status_code, missing_endpoint.value.error_code) == (404, "common.01000001")
    with pytest.raises(ClientRequestException) as invalid:
        control.create_endpoint(
            fabric.CreateEndpointRequest(
                workspace_id=ws, body=fabric.EndpointInput(name="bad", type="teleport")
            )
        )
    assert (invalid.value.status_code, invalid.value.error_code) == (400, "common.01000001")
    assert "type must be one of" in invalid.value.error_msg
