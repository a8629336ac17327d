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

/// An HTTP or WebSocket JSON-RPC connection. Subscriptions need WebSocket.
#[derive(Debug)]
pub enum Transport {
    /// `http://` or `https://`.
    Http(HttpClient),
    /// `ws://` or `wss://`.
    Ws(WsClient),
}

impl ClientT for Transport {
    async fn notification<Params>(&self, method: &str, params: Params) -> Result<(), RpcError>
    where
        Params: ToRpcParams + Send,
    {
        match self {
            Transport::Http(c) => c.notification(method, params).await,
            Transport::Ws(c) => c.notification(method, params).await,
        }
    }

    async fn request<R, Params>(&self, method: &str, params: Params) -> Result<R, RpcError>
    where
        R: DeserializeOwned,
        Params: ToRpcParams + Send,
    {
        match self {
            Transport::Http(c) => c.request(method, params).await,
            Transport::Ws(c) => c.request(method, params).await,
        }
    }

    async fn batch_request<'a, R>(
        &self,
        batch: BatchRequestBuilder<'a>,
    ) -> Result<BatchResponse<'a, R>, RpcError>
    where
        R: DeserializeOwned + fmt::Debug + 'a,
    {
        match self {
            Transport::Http(c) => c.batch_request(batch).await,
            Transport::Ws(c) => c.batch_request(batch).await,
        }
    }
}

impl SubscriptionClientT for Transport {
    async fn subscribe<'a, Notif, Params>(
        &self,
        subscribe_method: &'a str,
        params: Params,
        unsubscribe_method: &'a str,
    ) -> Result<Subscription<Notif>, RpcError>
    where
        Params: ToRpcParams + Send,
        Notif: DeserializeOwned,
    {
        match self {
            Transport::Http(_) => Err(RpcError::HttpNotImplemented),
            Transport::Ws(c) => {
                c.subscribe(subscribe_method, params, unsubscribe_method)
                    .await
            }
        }
    }

    async fn subscribe_to_method<Notif>(
        &self,
        method: &str,
    ) -> Result<Subscription<Notif>, RpcError>
    where
        Notif: DeserializeOwned,
    {
        match self {
            Transport::Http(_) => Err(RpcError::HttpNotImplemented),
            Transport::Ws(c) => c.subscribe_to_method(method).await,
        }
    }
}
