//! etcd's v3 Auth service, as etcd answers with authentication off and no user or role
//! defined: the status says disabled, authenticating says auth is not enabled, enabling it
//! fails for want of a root user, and lookups find nothing. d-engine keeps no users or roles,
//! so adding one is refused with a message saying so (the one answer that differs from etcd's;
//! the admin token guards what needs guarding, see docs/etcd-compatibility.md).

use dengine_proto::etcd::etcdserverpb as pb;
use tonic::{Code, Request, Response, Status};

use super::api::{ApiError, KvApi};
use super::etcd_service::{etcd, etcd_header_now};

/// The Auth service of etcd's v3 API.
pub struct EtcdAuthService {
    pub api: KvApi,
}

fn user_not_found() -> Status {
    etcd(Code::FailedPrecondition, "etcdserver: user name not found").into()
}

fn role_not_found() -> Status {
    etcd(Code::FailedPrecondition, "etcdserver: role name not found").into()
}

fn no_users() -> Status {
    ApiError::FailedPrecondition(
        "d-engine keeps no users or roles: etcd's authentication stays off (the admin token \
         guards membership changes; see docs/etcd-compatibility.md)"
            .into(),
    )
    .into()
}

impl EtcdAuthService {
    fn header(&self) -> Option<pb::ResponseHeader> {
        Some(etcd_header_now(&self.api))
    }
}

type Answer<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl pb::auth_server::Auth for EtcdAuthService {
    async fn auth_enable(
        &self,
        _: Request<pb::AuthEnableRequest>,
    ) -> Answer<pb::AuthEnableResponse> {
        Err(etcd(
            Code::FailedPrecondition,
            "etcdserver: root user does not exist",
        )
        .into())
    }

    async fn auth_disable(
        &self,
        _: Request<pb::AuthDisableRequest>,
    ) -> Answer<pb::AuthDisableResponse> {
        Ok(Response::new(pb::AuthDisableResponse {
            header: self.header(),
        }))
    }

    async fn auth_status(
        &self,
        _: Request<pb::AuthStatusRequest>,
    ) -> Answer<pb::AuthStatusResponse> {
        Ok(Response::new(pb::AuthStatusResponse {
            header: self.header(),
            enabled: false,
            auth_revision: 0,
        }))
    }

    async fn authenticate(
        &self,
        _: Request<pb::AuthenticateRequest>,
    ) -> Answer<pb::AuthenticateResponse> {
        Err(etcd(
            Code::FailedPrecondition,
            "etcdserver: authentication is not enabled",
        )
        .into())
    }

    async fn user_add(
        &self,
        _: Request<pb::AuthUserAddRequest>,
    ) -> Answer<pb::AuthUserAddResponse> {
        Err(no_users())
    }

    async fn user_get(
        &self,
        _: Request<pb::AuthUserGetRequest>,
    ) -> Answer<pb::AuthUserGetResponse> {
        Err(user_not_found())
    }

    async fn user_list(
        &self,
        _: Request<pb::AuthUserListRequest>,
    ) -> Answer<pb::AuthUserListResponse> {
        Ok(Response::new(pb::AuthUserListResponse {
            header: self.header(),
            users: Vec::new(),
        }))
    }

    async fn user_delete(
        &self,
        _: Request<pb::AuthUserDeleteRequest>,
    ) -> Answer<pb::AuthUserDeleteResponse> {
        Err(user_not_found())
    }

    async fn user_change_password(
        &self,
        _: Request<pb::AuthUserChangePasswordRequest>,
    ) -> Answer<pb::AuthUserChangePasswordResponse> {
        Err(user_not_found())
    }

    async fn user_grant_role(
        &self,
        _: Request<pb::AuthUserGrantRoleRequest>,
    ) -> Answer<pb::AuthUserGrantRoleResponse> {
        Err(user_not_found())
    }

    async fn user_revoke_role(
        &self,
        _: Request<pb::AuthUserRevokeRoleRequest>,
    ) -> Answer<pb::AuthUserRevokeRoleResponse> {
        Err(user_not_found())
    }

    async fn role_add(
        &self,
        _: Request<pb::AuthRoleAddRequest>,
    ) -> Answer<pb::AuthRoleAddResponse> {
        Err(no_users())
    }

    async fn role_get(
        &self,
        _: Request<pb::AuthRoleGetRequest>,
    ) -> Answer<pb::AuthRoleGetResponse> {
        Err(role_not_found())
    }

    async fn role_list(
        &self,
        _: Request<pb::AuthRoleListRequest>,
    ) -> Answer<pb::AuthRoleListResponse> {
        Ok(Response::new(pb::AuthRoleListResponse {
            header: self.header(),
            roles: Vec::new(),
        }))
    }

    async fn role_delete(
        &self,
        _: Request<pb::AuthRoleDeleteRequest>,
    ) -> Answer<pb::AuthRoleDeleteResponse> {
        Err(role_not_found())
    }

    async fn role_grant_permission(
        &self,
        _: Request<pb::AuthRoleGrantPermissionRequest>,
    ) -> Answer<pb::AuthRoleGrantPermissionResponse> {
        Err(role_not_found())
    }

    async fn role_revoke_permission(
        &self,
        _: Request<pb::AuthRoleRevokePermissionRequest>,
    ) -> Answer<pb::AuthRoleRevokePermissionResponse> {
        Err(role_not_found())
    }
}
