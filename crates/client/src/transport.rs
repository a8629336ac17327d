//! One client type over either transport, so callers pick by URL.

use jsonrpsee::core::client::{
    BatchResponse, ClientT, Error as RpcError, Subscription, SubscriptionClientT,
};
use jsonrpsee::core::params::BatchRequestBuilder;
use jsonrpsee::core::traits::ToRpcParams;
use jsonrpsee::http_client::HttpClient;
use jsonrpsee::ws_client::WsClient;
use serde::de::DeserializeOwned;
use std::fmt;
use std::future::Future;

/// An HTTP or WebSocket JSON-RPC connection. Subscriptions need WebSocket.
#[derive(Debug)]
pub enum Transport {
    /// `http://` or `https://`.
    Http(HttpClient),
    /// `ws://` or `wss://`.
    Ws(WsClient),
}

impl ClientT for Transport {
    fn notification<Params>(
        &self,
        method: &str,
        params: Params,
    ) -> impl Future<Output = Result<(), RpcError>> + Send
    where
        Params: ToRpcParams + Send,
    {
        async move {
            match self {
                Transport::Http(c) => c.notification(method, params).await,
                Transport::Ws(c) => c.notification(method, params).await,
            }
        }
    }

    fn request<R, Params>(
        &self,
        method: &str,
        params: Params,
    ) -> impl Future<Output = Result<R, RpcError>> + Send
    where
        R: DeserializeOwned,
        Params: ToRpcParams + Send,
    {
        async move {
            match self {
                Transport::Http(c) => c.request(method, params).await,
                Transport::Ws(c) => c.request(method, params).await,
            }
        }
    }

    fn batch_request<'a, R>(
        &self,
        batch: BatchRequestBuilder<'a>,
    ) -> impl Future<Output = Result<BatchResponse<'a, R>, RpcError>> + Send
    where
        R: DeserializeOwned + fmt::Debug + 'a,
    {
        async move {
            match self {
                Transport::Http(c) => c.batch_request(batch).await,
                Transport::Ws(c) => c.batch_request(batch).await,
            }
        }
    }
}

impl SubscriptionClientT for Transport {
    fn subscribe<'a, Notif, Params>(
        &self,
        subscribe_method: &'a str,
        params: Params,
        unsubscribe_method: &'a str,
    ) -> impl Future<Output = Result<Subscription<Notif>, RpcError>> + Send
    where
        Params: ToRpcParams + Send,
        Notif: DeserializeOwned,
    {
        async move {
            match self {
                Transport::Http(_) => Err(RpcError::HttpNotImplemented),
                Transport::Ws(c) => {
                    c.subscribe(subscribe_method, params, unsubscribe_method)
                        .await
                }
            }
        }
    }

    fn subscribe_to_method<Notif>(
        &self,
        method: &str,
    ) -> impl Future<Output = Result<Subscription<Notif>, RpcError>> + Send
    where
        Notif: DeserializeOwned,
    {
        async move {
            match self {
                Transport::Http(_) => Err(RpcError::HttpNotImplemented),
                Transport::Ws(c) => c.subscribe_to_method(method).await,
            }
        }
    }
}
