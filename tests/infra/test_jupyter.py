"""JupyterHub: signs people in with Cognito, reads sample datasets only, keeps notebooks encrypted."""

from __future__ import annotations

from cohort.catalogue import Bucket

from .helpers import Synth, environment, render, secrets


def test_the_hub_signs_in_with_its_cognito_client_and_a_secret_it_never_sees_in_plain_text(
    dev: Synth,
) -> None:
    # Given the hub's container and the OAuth client of the jupyter stack
    task_definition, _, container = dev.container("Hub")
    variables = environment(container)
    (client_id,) = dev.resources("jupyter", "AWS::Cognito::UserPoolClient")

    # Then it uses that client, calling back to its own OAuth endpoint
    assert variables["OAUTH_CLIENT_ID"] == {"Ref": client_id}
    assert render(variables["OAUTH_CALLBACK_URL"]).endswith("/hub/oauth_callback")

    # And ECS injects the client secret from a secret that CloudFormation fills from Cognito
    secret = dev.resolve(task_definition.stack, secrets(container)["OAUTH_CLIENT_SECRET"])
    value = dev.resolve("jupyter", dev.properties(secret)["SecretString"])
    assert value.attribute == "UserPoolClient.ClientSecret"


def test_the_hub_may_only_read_sample_datasets(dev: Synth) -> None:
    # Given the S3 statements of the hub's task role
    _, properties, _ = dev.container("Hub")
    role = dev.role_of("jupyter", properties["TaskRoleArn"])
    statements = [
        s for s in dev.iam_statements() if role in s.roles and any(a.startswith("s3:") for a in s.actions)
    ]

    # Then it may get objects of the samples bucket, and do nothing else in S3
    resources = {render(resource) for statement in statements for resource in statement.resources}
    assert {action for statement in statements for action in statement.actions} == {"s3:GetObject"}
    assert resources == {f"arn:${{AWS::Partition}}:s3:::{dev.catalogue.bucket(Bucket.SAMPLES)}/*"}


def test_notebooks_live_on_an_encrypted_file_system_mounted_over_tls(dev: Synth) -> None:
    # Given the hub's notebook volume
    _, properties, _ = dev.container("Hub")
    (volume,) = properties["Volumes"]
    configuration = volume["EFSVolumeConfiguration"]

    # Then it is an encrypted EFS file system, mounted over TLS through an IAM-authorized access point
    file_system = dev.resolve("jupyter", configuration["FilesystemId"])
    assert dev.properties(file_system)["Encrypted"] is True
    assert configuration["TransitEncryption"] == "ENABLED"
    assert configuration["AuthorizationConfig"]["IAM"] == "ENABLED"
