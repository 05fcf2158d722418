//! The arms: the routes a comparison sends its load along, and their names in the report.

use crate::ledger::Caller;

/// The route one arm sends its load along.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arm {
    /// Straight to the mock upstream.
    Direct,
    /// Through the bare hyper hop.
    Hop,
    /// Through the floor (`bench/floor.rs`): the bare hop plus the ledger calls tollgate makes
    /// before its response completes, for a prepaid (hold and charge) or postpaid (charge
    /// only) customer, with the ledger stub at zero latency or at Blnk-like latency.
    Floor { prepaid: bool, blnk_like: bool },
    /// Through tollgate, for a prepaid (hold and charge) or postpaid (charge only) customer,
    /// with the ledger stub at zero latency or at Blnk-like latency.
    Tollgate { prepaid: bool, blnk_like: bool },
}

impl Arm {
    /// The arms of the latency comparison, each floor before the tollgate arm it bounds.
    pub const LATENCY_ARMS: [Arm; 10] = [
        Arm::Direct,
        Arm::Hop,
        Arm::POSTPAID_FLOOR,
        Arm::POSTPAID,
        Arm::PREPAID_FLOOR,
        Arm::PREPAID,
        Arm::Floor {
            prepaid: false,
            blnk_like: true,
        },
        Arm::Tollgate {
            prepaid: false,
            blnk_like: true,
        },
        Arm::Floor {
            prepaid: true,
            blnk_like: true,
        },
        Arm::Tollgate {
            prepaid: true,
            blnk_like: true,
        },
    ];

    pub const POSTPAID: Arm = Arm::Tollgate {
        prepaid: false,
        blnk_like: false,
    };
    pub const PREPAID: Arm = Arm::Tollgate {
        prepaid: true,
        blnk_like: false,
    };
    pub const POSTPAID_FLOOR: Arm = Arm::Floor {
        prepaid: false,
        blnk_like: false,
    };
    pub const PREPAID_FLOOR: Arm = Arm::Floor {
        prepaid: true,
        blnk_like: false,
    };

    pub fn label(self) -> &'static str {
        match self {
            Arm::Direct => "direct",
            Arm::Hop => "bare hop",
            Arm::Floor {
                prepaid: false,
                blnk_like: false,
            } => "floor postpaid, ledger 0 ms",
            Arm::Floor {
                prepaid: true,
                blnk_like: false,
            } => "floor prepaid, ledger 0 ms",
            Arm::Floor {
                prepaid: false,
                blnk_like: true,
            } => "floor postpaid, Blnk-like ledger",
            Arm::Floor {
                prepaid: true,
                blnk_like: true,
            } => "floor prepaid, Blnk-like ledger",
            Arm::Tollgate {
                prepaid: false,
                blnk_like: false,
            } => "tollgate postpaid, ledger 0 ms",
            Arm::Tollgate {
                prepaid: true,
                blnk_like: false,
            } => "tollgate prepaid, ledger 0 ms",
            Arm::Tollgate {
                prepaid: false,
                blnk_like: true,
            } => "tollgate postpaid, Blnk-like ledger",
            Arm::Tollgate {
                prepaid: true,
                blnk_like: true,
            } => "tollgate prepaid, Blnk-like ledger",
        }
    }

    /// Returns whether the ledger stub serves this arm's calls at Blnk-like latency.
    pub fn blnk_like(self) -> bool {
        match self {
            Arm::Direct | Arm::Hop => false,
            Arm::Floor { blnk_like, .. } | Arm::Tollgate { blnk_like, .. } => blnk_like,
        }
    }

    /// Returns whether the arm sends its load as the prepaid customer.
    pub fn prepaid(self) -> bool {
        match self {
            Arm::Direct | Arm::Hop => false,
            Arm::Floor { prepaid, .. } | Arm::Tollgate { prepaid, .. } => prepaid,
        }
    }

    /// Returns the caller whose ledger calls this arm's rounds record: the floor for a floor
    /// arm, tollgate for the others (direct and the hop make no ledger calls).
    pub fn ledger_caller(self) -> Caller {
        match self {
            Arm::Floor { .. } => Caller::Floor,
            Arm::Direct | Arm::Hop | Arm::Tollgate { .. } => Caller::Tollgate,
        }
    }
}
