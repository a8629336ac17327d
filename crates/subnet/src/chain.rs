//! The chain steps every neuron takes at start-up: registration, stake, axon.

use crate::SubnetError;
use agora_client::{api::AgoraApiClient, types::TxReceipt, Client, TxOptions};
use agora_ledger::Call;
use agora_primitives::{crypto::Pair, NetUid};

/// Signs, submits and waits for `call`; a failed call becomes [`SubnetError::TxFailed`].
pub async fn submit(client: &Client, signer: &Pair, call: Call) -> Result<TxReceipt, SubnetError> {
    let name = call.name();
    let receipt = client
        .sign_submit_and_wait(signer, call, TxOptions::default())
        .await?;
    match &receipt.error {
        None => Ok(receipt),
        Some(e) => Err(SubnetError::TxFailed {
            call: name,
            code: e.code,
            message: e.message.clone(),
        }),
    }
}

/// The uid of `hotkey` on `netuid`, registering it (paid by `coldkey`) when it has none.
pub async fn ensure_registered(
    client: &Client,
    netuid: NetUid,
    coldkey: &Pair,
    hotkey: &Pair,
) -> Result<u16, SubnetError> {
    if let Some(uid) = uid_of(client, netuid, hotkey).await? {
        return Ok(uid);
    }
    submit(
        client,
        coldkey,
        Call::BurnedRegister {
            netuid,
            hotkey: hotkey.account(),
        },
    )
    .await?;
    uid_of(client, netuid, hotkey)
        .await?
        .ok_or(SubnetError::TxFailed {
            call: "burned_register",
            code: 0,
            message: "registered but not in the metagraph".into(),
        })
}

async fn uid_of(
    client: &Client,
    netuid: NetUid,
    hotkey: &Pair,
) -> Result<Option<u16>, SubnetError> {
    let mg = client
        .rpc()
        .metagraph(netuid.0)
        .await
        .map_err(agora_client::ClientError::from)?;
    let mg = mg.ok_or(SubnetError::UnknownSubnet(netuid.0))?;
    Ok(mg
        .neurons
        .iter()
        .find(|n| n.hotkey == hotkey.account())
        .map(|n| n.uid))
}

/// Tops the stake of `coldkey` on `hotkey` up to `target_rao`.
pub async fn ensure_stake(
    client: &Client,
    coldkey: &Pair,
    hotkey: &Pair,
    target_rao: u64,
) -> Result<(), SubnetError> {
    let stakes = client
        .rpc()
        .stakes(coldkey.account().to_ss58())
        .await
        .map_err(agora_client::ClientError::from)?;
    let have = stakes
        .iter()
        .find(|s| s.hotkey == hotkey.account())
        .map(|s| s.stake_rao)
        .unwrap_or(0);
    if have < target_rao {
        let amount_rao = target_rao.saturating_sub(have);
        submit(
            client,
            coldkey,
            Call::AddStake {
                hotkey: hotkey.account(),
                amount_rao,
            },
        )
        .await?;
    }
    Ok(())
}

/// Publishes the hotkey's endpoint.
pub async fn serve_axon(
    client: &Client,
    netuid: NetUid,
    hotkey: &Pair,
    ip: &str,
    port: u16,
    attestation_digest: Option<[u8; 32]>,
) -> Result<(), SubnetError> {
    let call = Call::ServeAxon {
        netuid,
        ip: ip.to_owned(),
        port,
        protocol: 0,
        version: 1,
        attestation_digest,
    };
    submit(client, hotkey, call).await.map(|_| ())
}
