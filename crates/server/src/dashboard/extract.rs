//! Who asks, decided once per request: extractors that turn the session cookie or bearer token
//! into a [`Viewer`], and a `{domain}` in the path into a domain that viewer may see, or answer
//! as a page or the API answers a stranger (a redirect to the login form, 401, 404).

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use super::api::{api_viewer, error};
use super::auth::Viewer;
use super::pages::not_found;
use super::{Dashboard, DomainInfo, page_viewer};

/// The viewer of an API request; without a valid session or token the answer is 401.
pub(crate) struct ApiViewer(pub Viewer);

/// The viewer of a page request; without a session the answer is the login form.
pub(crate) struct PageViewer(pub Viewer);

/// The `{domain}` of an API request, as its viewer may see it; 404 when the viewer may not see
/// it (the same answer as for a domain that is not configured).
pub(crate) struct ApiDomain(pub DomainInfo);

/// [`ApiDomain`] for a page, with its viewer: else the login form, or the page saying there is
/// no such domain.
pub(crate) struct PageDomain {
    pub viewer: Viewer,
    pub info: DomainInfo,
}

impl FromRequestParts<Arc<Dashboard>> for ApiViewer {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        dashboard: &Arc<Dashboard>,
    ) -> Result<Self, Response> {
        api_viewer(dashboard, &parts.headers)
            .map(ApiViewer)
            .map_err(|response| *response)
    }
}

impl FromRequestParts<Arc<Dashboard>> for PageViewer {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        dashboard: &Arc<Dashboard>,
    ) -> Result<Self, Response> {
        page_viewer(dashboard, &parts.headers)
            .map(PageViewer)
            .map_err(|response| *response)
    }
}

/// The `{domain}` of the path, after the viewer (so a stranger learns nothing from the path).
async fn domain_name(parts: &mut Parts, dashboard: &Arc<Dashboard>) -> Result<String, Response> {
    Path::<String>::from_request_parts(parts, dashboard)
        .await
        .map(|Path(name)| name)
        .map_err(IntoResponse::into_response)
}

impl FromRequestParts<Arc<Dashboard>> for ApiDomain {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        dashboard: &Arc<Dashboard>,
    ) -> Result<Self, Response> {
        let ApiViewer(viewer) = ApiViewer::from_request_parts(parts, dashboard).await?;
        let name = domain_name(parts, dashboard).await?;
        match dashboard.find(&viewer, &name) {
            Some(info) => Ok(ApiDomain(info)),
            None => Err(error(StatusCode::NOT_FOUND, "no such domain")),
        }
    }
}

impl FromRequestParts<Arc<Dashboard>> for PageDomain {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        dashboard: &Arc<Dashboard>,
    ) -> Result<Self, Response> {
        let PageViewer(viewer) = PageViewer::from_request_parts(parts, dashboard).await?;
        let name = domain_name(parts, dashboard).await?;
        match dashboard.find(&viewer, &name) {
            Some(info) => Ok(PageDomain { viewer, info }),
            None => Err(not_found(&viewer, &format!("No domain {name} here."))),
        }
    }
}
