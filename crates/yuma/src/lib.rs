//! Yuma Consensus as a pure function (work in progress).
