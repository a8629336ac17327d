//! A chain in memory: builds blocks from transactions and re-executes every block on a copy
//! of its parent state, so every test also checks that building and importing agree.

use agora_ledger::{
    build_block, execute_block, query, Block, Call, Candidate, ExecutedBlock, GenesisConfig,
    Header, MemKv, SignatureCheck, SignedTx, TxError, TxPayload,
};
use agora_primitives::{codec::Encode, crypto::Pair, AccountId, Hash};

pub struct TestChain {
    pub kv: MemKv,
    pub head: Header,
    pub genesis: Hash,
    pub blocks: Vec<Block>,
}

pub fn pair(uri: &str) -> Pair {
    Pair::from_uri(uri).unwrap()
}

pub fn alice() -> Pair {
    pair("//Alice")
}

pub fn bob() -> Pair {
    pair("//Bob")
}

pub const TOKEN: u64 = 1_000_000_000;

impl TestChain {
    pub fn new() -> Self {
        Self::with_genesis(GenesisConfig::dev())
    }

    pub fn with_genesis(cfg: GenesisConfig) -> Self {
        let g = cfg.build().unwrap();
        let mut kv = MemKv::new();
        kv.apply(&g.diff);
        TestChain {
            kv,
            genesis: g.block.header.hash(),
            head: g.block.header.clone(),
            blocks: Vec::new(),
        }
    }

    pub fn nonce(&self, who: &AccountId) -> u64 {
        query::account(&self.kv, who).unwrap().nonce
    }

    pub fn free(&self, who: &AccountId) -> u64 {
        query::account(&self.kv, who).unwrap().free_rao
    }

    pub fn payload(&self, signer: &Pair, call: Call) -> TxPayload {
        TxPayload {
            genesis_hash: self.genesis,
            nonce: self.nonce(&signer.account()),
            valid_from: 0,
            valid_until: self.head.number + 100,
            tip_rao: 0,
            call,
        }
    }

    pub fn tx(&self, signer: &Pair, call: Call) -> SignedTx {
        self.payload(signer, call).sign(signer)
    }

    /// Builds a block of `txs`, checks that importing it reproduces it, and applies it.
    pub fn block(&mut self, txs: Vec<SignedTx>) -> (ExecutedBlock, Vec<agora_ledger::Rejected>) {
        let candidates = txs.into_iter().map(|tx| Candidate {
            encoded_len: tx.encoded_size(),
            tx,
            sig: SignatureCheck::Verify,
        });
        let ts = self.head.timestamp_ms + 1000;
        let (built, rejected) =
            build_block(&self.kv, &self.head, ts, candidates, usize::MAX).unwrap();
        let imported =
            execute_block(&self.kv, &self.head, &built.block, SignatureCheck::Verify).unwrap();
        assert_eq!(imported.diff, built.diff, "import differs from build");
        assert_eq!(imported.events, built.events);
        self.kv.apply(&built.diff);
        self.head = built.block.header.clone();
        self.blocks.push(built.block.clone());
        (built, rejected)
    }

    /// Advances `n` empty blocks.
    pub fn advance(&mut self, n: u64) {
        for _ in 0..n {
            self.block(Vec::new());
        }
    }

    /// Submits one transaction alone in a block. `Err` for a rejected transaction or for a
    /// call that failed (its fee then charged).
    pub fn submit(&mut self, signer: &Pair, call: Call) -> Result<(), TxError> {
        let tx = self.tx(signer, call);
        self.submit_tx(tx)
    }

    pub fn submit_tx(&mut self, tx: SignedTx) -> Result<(), TxError> {
        let (built, rejected) = self.block(vec![tx]);
        if let Some(r) = rejected.into_iter().next() {
            return Err(r.error);
        }
        match &built.events.receipts[0].error {
            None => Ok(()),
            Some((code, msg)) => Err(TxError::Malformed(format!("{code}: {msg}"))),
        }
    }

    /// Like [`submit`], but returns the failed call's numeric code.
    pub fn submit_code(&mut self, signer: &Pair, call: Call) -> Result<(), u16> {
        let tx = self.tx(signer, call);
        let (built, rejected) = self.block(vec![tx]);
        if let Some(r) = rejected.into_iter().next() {
            return Err(r.error.code());
        }
        match &built.events.receipts[0].error {
            None => Ok(()),
            Some((code, _)) => Err(*code),
        }
    }

    /// Issuance must equal free + staked + locked balances.
    pub fn check_issuance(&self) {
        use agora_ledger::state::keys;
        use agora_primitives::codec::Decode;
        let mut free = 0u128;
        let mut staked = 0u128;
        for (k, v) in self.kv.iter() {
            if k.starts_with(keys::ACCOUNT) {
                free += u128::from(
                    agora_ledger::types::AccountInfo::decode(&mut v.as_slice())
                        .unwrap()
                        .free_rao,
                );
            } else if k.starts_with(keys::STAKE) {
                staked += u128::from(u64::decode(&mut v.as_slice()).unwrap());
            }
        }
        let locked: u128 = query::subnets(&self.kv)
            .unwrap()
            .iter()
            .map(|(_, s)| u128::from(s.locked_rao))
            .sum();
        let st = agora_ledger::state::State::new(&self.kv);
        let totals = st.totals().unwrap();
        assert_eq!(
            u128::from(totals.issuance_rao),
            free + staked + locked,
            "issuance invariant"
        );
        assert_eq!(u128::from(totals.stake_rao), staked, "stake total");
    }
}
