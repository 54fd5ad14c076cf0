"""`/api/` lists the API; Swagger UI and Redoc serve the schema from local files; errors are documented."""

import re

import pytest
from django.contrib.staticfiles import finders
from drf_spectacular.generators import SchemaGenerator

ERROR_REF = "#/components/schemas/ErrorOut"


@pytest.fixture(scope="module")
def schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def operations(schema: dict):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield path, method.upper(), operation


def test_api_index_lists_every_operation_of_the_schema_and_links_the_docs(client, schema):
    response = client.get("/api/")
    assert response.status_code == 200
    body = response.json()
    assert body["docs"] == {
        "swagger_ui": "http://testserver/api/docs/",
        "redoc": "http://testserver/api/redoc/",
        "openapi_schema": "http://testserver/api/schema/",
    }
    assert body["websocket"] == "ws://testserver/ws/chat/"
    listed = {(e["path"], method): text for e in body["endpoints"] for method, text in e["methods"].items()}
    documented = {(path, method) for path, method, _ in operations(schema)}
    assert set(listed) == documented
    assert all(listed.values()), "every listed method says what it does"


@pytest.mark.parametrize("path", ["/api/docs/", "/api/redoc/"])
def test_the_docs_pages_load_their_scripts_from_this_server(client, path):
    response = client.get(path)
    assert response.status_code == 200
    html = response.content.decode()
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources, html
    assert not [s for s in sources if s.startswith(("http:", "https:", "//"))], sources
    scripts = [s for s in sources if s.endswith(".js")]
    assert scripts
    for source in scripts:
        assert source.startswith("/static/"), source
        assert finders.find(source.removeprefix("/static/")), f"{source} is not a static file of the project"
    assert "/api/schema/" in html
    if path == "/api/docs/":
        assert '"validatorUrl": null' in html  # Swagger UI asks no online validator


def test_every_operation_and_response_is_described(schema):
    for path, method, operation in operations(schema):
        assert operation.get("description"), (method, path)
        for code, response in operation["responses"].items():
            assert response.get("description"), (method, path, code)
        for parameter in operation.get("parameters", []):
            assert parameter.get("description"), (method, path, parameter["name"])


def test_error_responses_use_the_error_schema(schema):
    for path, method, operation in operations(schema):
        responses = operation["responses"]
        errors = {code: r for code, r in responses.items() if code.startswith("4")}
        for code, response in errors.items():
            assert response["content"]["application/json"]["schema"]["$ref"] == ERROR_REF, (method, path, code)
        if operation.get("security") and {} not in operation["security"]:
            assert "401" in errors, (method, path)
        if "{" in path:
            assert "404" in errors, (method, path)
        if "requestBody" in operation:
            assert "400" in errors, (method, path)
    assert schema["components"]["schemas"]["ErrorOut"]["required"] == ["code", "detail"]


@pytest.mark.django_db
def test_a_documented_error_has_the_documented_shape(client, schema):
    """The 401 the schema promises for /api/users/me/ is what the endpoint answers."""
    assert "401" in schema["paths"]["/api/users/me/"]["get"]["responses"]
    response = client.get("/api/users/me/")
    assert response.status_code == 401
    assert set(response.json()) == {"code", "detail"}
    response = client.post("/api/auth/register/", {"username": ""}, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
