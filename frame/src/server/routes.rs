//! A router that remembers its routes. axum's `Router` cannot list what it serves, yet an
//! endpoint must be known in three places (the service's router, the gateway's route table and
//! the Cedar schema's actions): [`Routes`] builds the same `Router` and keeps the (method, path)
//! of every route it was given, so a test can check the three agree.
//!
//! It mirrors axum's API: `Routes::new().route("/x/{id}", get(a).post(b))`, with this module's
//! [`get`], [`post`], [`put`], [`patch`] and [`delete`] in place of `axum::routing`'s.

use axum::handler::Handler;
use axum::routing::{self, MethodRouter};
use axum::Router;
use http::Method;

/// One route a service serves: a method and the path template (`{name}` for a parameter).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RouteEntry {
    pub method: Method,
    pub path: String,
}

/// The methods of one path, and their handlers.
pub struct On<S> {
    methods: Vec<Method>,
    router: MethodRouter<S>,
}

/// A router and the list of what it routes.
pub struct Routes<S = ()> {
    router: Router<S>,
    table: Vec<RouteEntry>,
}

macro_rules! method_fns {
    ($($name:ident => $method:ident),* $(,)?) => {
        $(
            #[doc = concat!("Routes `", stringify!($method), "` to `handler`.")]
            pub fn $name<H, T, S>(handler: H) -> On<S>
            where
                H: Handler<T, S>,
                T: 'static,
                S: Clone + Send + Sync + 'static,
            {
                On {
                    methods: vec![Method::$method],
                    router: routing::$name(handler),
                }
            }
        )*

        impl<S: Clone + Send + Sync + 'static> On<S> {
            $(
                #[doc = concat!("Also routes `", stringify!($method), "` to `handler`.")]
                pub fn $name<H, T>(mut self, handler: H) -> Self
                where
                    H: Handler<T, S>,
                    T: 'static,
                {
                    self.methods.push(Method::$method);
                    self.router = self.router.$name(handler);
                    self
                }
            )*
        }
    };
}

method_fns!(get => GET, post => POST, put => PUT, patch => PATCH, delete => DELETE);

impl<S: Clone + Send + Sync + 'static> Default for Routes<S> {
    fn default() -> Self {
        Routes {
            router: Router::new(),
            table: Vec::new(),
        }
    }
}

impl<S: Clone + Send + Sync + 'static> Routes<S> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the methods of `path`. Like axum, a path is given once.
    pub fn route(mut self, path: &str, on: On<S>) -> Self {
        self.table
            .extend(on.methods.into_iter().map(|method| RouteEntry {
                method,
                path: path.to_owned(),
            }));
        self.router = self.router.route(path, on.router);
        self
    }

    /// Adds every route of `other` (as `Router::merge`).
    pub fn merge(mut self, other: Routes<S>) -> Self {
        self.table.extend(other.table);
        self.router = self.router.merge(other.router);
        self
    }

    /// What this router serves, in the order it was given.
    pub fn table(&self) -> &[RouteEntry] {
        &self.table
    }

    /// The router, for the service to add its layers, fallbacks and state to.
    pub fn into_router(self) -> Router<S> {
        self.router
    }

    /// Both: the router and its list.
    pub fn into_parts(self) -> (Router<S>, Vec<RouteEntry>) {
        (self.router, self.table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http::{Request, StatusCode};
    use tower::ServiceExt;

    async fn status(router: &Router, method: Method, path: &str) -> StatusCode {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        router.clone().oneshot(request).await.unwrap().status()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_table_lists_exactly_what_the_router_serves() {
        let nested = Routes::new().route("/b", delete(|| async { "deleted" }));
        let routes = Routes::new()
            .route(
                "/a/{id}",
                get(|| async { "got" }).post(|| async { "posted" }),
            )
            .merge(nested);
        assert_eq!(
            routes.table(),
            [
                RouteEntry {
                    method: Method::GET,
                    path: "/a/{id}".into()
                },
                RouteEntry {
                    method: Method::POST,
                    path: "/a/{id}".into()
                },
                RouteEntry {
                    method: Method::DELETE,
                    path: "/b".into()
                },
            ]
        );
        let router = routes.into_router();
        assert_eq!(status(&router, Method::GET, "/a/1").await, StatusCode::OK);
        assert_eq!(status(&router, Method::POST, "/a/1").await, StatusCode::OK);
        assert_eq!(status(&router, Method::DELETE, "/b").await, StatusCode::OK);
        assert_eq!(
            status(&router, Method::PUT, "/a/1").await,
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            status(&router, Method::GET, "/c").await,
            StatusCode::NOT_FOUND
        );
    }
}
