//! The tenant: a business's lifecycle on the platform (onboarding, profile, WhatsApp number,
//! suspension, closing). One stream per tenant: `tenant/<tenant_id>`.
//!
//! WhatsApp secrets (access token, app secret) never appear here: the command side stores them
//! encrypted in their own table; the events say only that a number is connected.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::decider::Decider;
use crate::event::DomainEvent;
use crate::ids::TenantId;
use crate::plan::Plan;
use crate::values::{BusinessName, Email, IanaTimeZone, Reason, TenantSlug};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhatsAppNumber {
    /// Meta's id for the number, by which webhooks are routed.
    pub phone_number_id: String,
    pub display_phone_number: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TenantCommand {
    Onboard {
        tenant_id: TenantId,
        business_name: BusinessName,
        slug: TenantSlug,
        contact_email: Email,
        time_zone: IanaTimeZone,
        plan: Plan,
        trial_ends_at: DateTime<Utc>,
        /// Until when the link emailed to the owner to verify their address works.
        verification_expires_at: DateTime<Utc>,
    },
    UpdateProfile {
        business_name: Option<BusinessName>,
        contact_email: Option<Email>,
        time_zone: Option<IanaTimeZone>,
    },
    /// Another link to verify the contact email (a lost email, an expired link, a changed
    /// address).
    RequestEmailVerification {
        expires_at: DateTime<Utc>,
    },
    /// The owner followed a link sent to `email`.
    VerifyEmail {
        email: Email,
    },
    ConnectWhatsApp(WhatsAppNumber),
    DisconnectWhatsApp,
    /// Meta refused the stored token (error 190): admins must reconnect.
    InvalidateWhatsAppCredentials {
        meta_error_code: i64,
    },
    Suspend {
        reason: Reason,
        cause: SuspensionCause,
    },
    /// The operator lifts a suspension, whatever its cause.
    Reinstate,
    /// A payment arrived: a suspension for non-payment ends (an operator's stays).
    ReinstateAfterPayment,
    Close {
        reason: Reason,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum TenantEvent {
    TenantOnboarded {
        tenant_id: TenantId,
        business_name: BusinessName,
        slug: TenantSlug,
        contact_email: Email,
        time_zone: IanaTimeZone,
        plan: Plan,
        trial_ends_at: DateTime<Utc>,
        /// Whether the contact email is known to reach the owner. A business onboards with it
        /// `false` and verifies it before it connects WhatsApp or takes bookings; businesses
        /// onboarded before verification existed read as verified.
        #[serde(default = "verified")]
        email_verified: bool,
    },
    TenantProfileUpdated {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        business_name: Option<BusinessName>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        contact_email: Option<Email>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        time_zone: Option<IanaTimeZone>,
    },
    /// A link to verify `email` was made (the notifier emails it; the token is the vault's).
    EmailVerificationRequested {
        email: Email,
        expires_at: DateTime<Utc>,
    },
    EmailVerified {
        email: Email,
    },
    WhatsAppNumberConnected {
        phone_number_id: String,
        display_phone_number: String,
    },
    WhatsAppNumberDisconnected {
        phone_number_id: String,
    },
    WhatsAppCredentialsInvalidated {
        phone_number_id: String,
        meta_error_code: i64,
    },
    TenantSuspended {
        reason: Reason,
        /// Written since billing; earlier suspensions were all the operator's.
        #[serde(default)]
        cause: SuspensionCause,
    },
    TenantReinstated,
    TenantClosed {
        reason: Reason,
    },
}

impl DomainEvent for TenantEvent {
    const STREAM_TYPE: &'static str = "tenant";

    fn event_type(&self) -> &'static str {
        match self {
            Self::TenantOnboarded { .. } => "TenantOnboarded",
            Self::TenantProfileUpdated { .. } => "TenantProfileUpdated",
            Self::EmailVerificationRequested { .. } => "EmailVerificationRequested",
            Self::EmailVerified { .. } => "EmailVerified",
            Self::WhatsAppNumberConnected { .. } => "WhatsAppNumberConnected",
            Self::WhatsAppNumberDisconnected { .. } => "WhatsAppNumberDisconnected",
            Self::WhatsAppCredentialsInvalidated { .. } => "WhatsAppCredentialsInvalidated",
            Self::TenantSuspended { .. } => "TenantSuspended",
            Self::TenantReinstated => "TenantReinstated",
            Self::TenantClosed { .. } => "TenantClosed",
        }
    }
}

fn verified() -> bool {
    true
}

/// Who suspended a business: the platform operator, or billing for an unpaid invoice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SuspensionCause {
    #[default]
    Operator,
    NonPayment,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    Active,
    Suspended,
    Closed,
}

crate::labels::labels!(TenantStatus {
    Active => "active",
    Suspended => "suspended",
    Closed => "closed",
});

#[derive(Debug, Clone, Default, PartialEq)]
pub struct TenantState {
    pub onboarded: Option<Onboarded>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Onboarded {
    pub tenant_id: TenantId,
    pub business_name: BusinessName,
    pub slug: TenantSlug,
    pub contact_email: Email,
    pub time_zone: IanaTimeZone,
    pub plan: Plan,
    pub trial_ends_at: DateTime<Utc>,
    pub status: TenantStatus,
    pub suspension_reason: Option<Reason>,
    pub suspension_cause: Option<SuspensionCause>,
    pub whatsapp: Option<WhatsAppNumber>,
    pub whatsapp_credentials_valid: bool,
    /// The contact email is known to reach the owner.
    pub email_verified: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantError {
    #[error("the tenant is already onboarded")]
    AlreadyOnboarded,
    #[error("the tenant does not exist")]
    NotOnboarded,
    #[error("the tenant is closed")]
    Closed,
    #[error("the tenant is suspended")]
    Suspended,
    #[error("the tenant is not suspended")]
    NotSuspended,
    #[error("the tenant has no WhatsApp number connected")]
    NoWhatsAppNumber,
    #[error("the update changes nothing")]
    NothingToUpdate,
    #[error("the owner's email is not verified yet")]
    EmailNotVerified,
    #[error("the email is verified already")]
    EmailAlreadyVerified,
    /// The link was sent to an address that is no longer the business's contact email.
    #[error("the link was sent to an earlier address")]
    EmailChanged,
}

pub struct Tenant;

impl Decider for Tenant {
    type State = TenantState;
    type Command = TenantCommand;
    type Event = TenantEvent;
    type Error = TenantError;

    fn decide(
        state: &TenantState,
        command: TenantCommand,
    ) -> Result<Vec<TenantEvent>, TenantError> {
        use TenantCommand as C;
        use TenantEvent as E;
        let Some(tenant) = &state.onboarded else {
            return match command {
                C::Onboard {
                    tenant_id,
                    business_name,
                    slug,
                    contact_email,
                    time_zone,
                    plan,
                    trial_ends_at,
                    verification_expires_at,
                } => Ok(vec![
                    E::TenantOnboarded {
                        tenant_id,
                        business_name,
                        slug,
                        contact_email: contact_email.clone(),
                        time_zone,
                        plan,
                        trial_ends_at,
                        email_verified: false,
                    },
                    E::EmailVerificationRequested {
                        email: contact_email,
                        expires_at: verification_expires_at,
                    },
                ]),
                _ => Err(TenantError::NotOnboarded),
            };
        };
        if tenant.status == TenantStatus::Closed {
            return Err(match command {
                C::Onboard { .. } => TenantError::AlreadyOnboarded,
                _ => TenantError::Closed,
            });
        }
        match command {
            C::Onboard { .. } => Err(TenantError::AlreadyOnboarded),
            C::UpdateProfile {
                business_name,
                contact_email,
                time_zone,
            } => {
                // Only what changes is recorded; an update that changes nothing is refused so
                // that clients learn their edit was a no-op.
                let business_name = business_name.filter(|n| *n != tenant.business_name);
                let contact_email = contact_email.filter(|e| *e != tenant.contact_email);
                let time_zone = time_zone.filter(|z| *z != tenant.time_zone);
                if business_name.is_none() && contact_email.is_none() && time_zone.is_none() {
                    return Err(TenantError::NothingToUpdate);
                }
                Ok(vec![E::TenantProfileUpdated {
                    business_name,
                    contact_email,
                    time_zone,
                }])
            }
            C::RequestEmailVerification { expires_at } => {
                if tenant.email_verified {
                    return Err(TenantError::EmailAlreadyVerified);
                }
                Ok(vec![E::EmailVerificationRequested {
                    email: tenant.contact_email.clone(),
                    expires_at,
                }])
            }
            C::VerifyEmail { email } => {
                if tenant.email_verified {
                    return Ok(vec![]); // a second click on the link
                }
                if email != tenant.contact_email {
                    return Err(TenantError::EmailChanged);
                }
                Ok(vec![E::EmailVerified { email }])
            }
            C::ConnectWhatsApp(_) if !tenant.email_verified => Err(TenantError::EmailNotVerified),
            C::ConnectWhatsApp(number) => {
                // Reconnecting the same number (e.g. with a fresh token) is recorded again: it
                // makes invalidated credentials valid.
                let mut events = Vec::new();
                if let Some(old) = &tenant.whatsapp
                    && old.phone_number_id != number.phone_number_id
                {
                    events.push(E::WhatsAppNumberDisconnected {
                        phone_number_id: old.phone_number_id.clone(),
                    });
                }
                events.push(E::WhatsAppNumberConnected {
                    phone_number_id: number.phone_number_id,
                    display_phone_number: number.display_phone_number,
                });
                Ok(events)
            }
            C::DisconnectWhatsApp => {
                let number = tenant
                    .whatsapp
                    .as_ref()
                    .ok_or(TenantError::NoWhatsAppNumber)?;
                Ok(vec![E::WhatsAppNumberDisconnected {
                    phone_number_id: number.phone_number_id.clone(),
                }])
            }
            C::InvalidateWhatsAppCredentials { meta_error_code } => {
                let number = tenant
                    .whatsapp
                    .as_ref()
                    .ok_or(TenantError::NoWhatsAppNumber)?;
                if !tenant.whatsapp_credentials_valid {
                    return Ok(vec![]); // already known: the sender may report it many times
                }
                Ok(vec![E::WhatsAppCredentialsInvalidated {
                    phone_number_id: number.phone_number_id.clone(),
                    meta_error_code,
                }])
            }
            C::Suspend { reason, cause } => match tenant.status {
                TenantStatus::Suspended => Err(TenantError::Suspended),
                _ => Ok(vec![E::TenantSuspended { reason, cause }]),
            },
            C::Reinstate => match tenant.status {
                TenantStatus::Suspended => Ok(vec![E::TenantReinstated]),
                _ => Err(TenantError::NotSuspended),
            },
            C::ReinstateAfterPayment => Ok(
                if tenant.status == TenantStatus::Suspended
                    && tenant.suspension_cause == Some(SuspensionCause::NonPayment)
                {
                    vec![E::TenantReinstated]
                } else {
                    vec![]
                },
            ),
            C::Close { reason } => Ok(vec![E::TenantClosed { reason }]),
        }
    }

    fn evolve(mut state: TenantState, event: &TenantEvent) -> TenantState {
        use TenantEvent as E;
        if let E::TenantOnboarded {
            tenant_id,
            business_name,
            slug,
            contact_email,
            time_zone,
            plan,
            trial_ends_at,
            email_verified,
        } = event
        {
            state.onboarded = Some(Onboarded {
                tenant_id: *tenant_id,
                business_name: business_name.clone(),
                slug: slug.clone(),
                contact_email: contact_email.clone(),
                time_zone: *time_zone,
                plan: *plan,
                trial_ends_at: *trial_ends_at,
                status: TenantStatus::Active,
                suspension_reason: None,
                suspension_cause: None,
                whatsapp: None,
                whatsapp_credentials_valid: false,
                email_verified: *email_verified,
            });
            return state;
        }
        let Some(tenant) = state.onboarded.as_mut() else {
            return state;
        };
        match event {
            E::TenantOnboarded { .. } => {}
            E::TenantProfileUpdated {
                business_name,
                contact_email,
                time_zone,
            } => {
                if let Some(n) = business_name {
                    tenant.business_name = n.clone();
                }
                if let Some(e) = contact_email {
                    tenant.contact_email = e.clone();
                }
                if let Some(z) = time_zone {
                    tenant.time_zone = *z;
                }
            }
            E::EmailVerificationRequested { .. } => {}
            E::EmailVerified { .. } => tenant.email_verified = true,
            E::WhatsAppNumberConnected {
                phone_number_id,
                display_phone_number,
            } => {
                tenant.whatsapp = Some(WhatsAppNumber {
                    phone_number_id: phone_number_id.clone(),
                    display_phone_number: display_phone_number.clone(),
                });
                tenant.whatsapp_credentials_valid = true;
            }
            E::WhatsAppNumberDisconnected { .. } => {
                tenant.whatsapp = None;
                tenant.whatsapp_credentials_valid = false;
            }
            E::WhatsAppCredentialsInvalidated { .. } => tenant.whatsapp_credentials_valid = false,
            E::TenantSuspended { reason, cause } => {
                tenant.status = TenantStatus::Suspended;
                tenant.suspension_reason = Some(reason.clone());
                tenant.suspension_cause = Some(*cause);
            }
            E::TenantReinstated => {
                tenant.status = TenantStatus::Active;
                tenant.suspension_reason = None;
                tenant.suspension_cause = None;
            }
            E::TenantClosed { .. } => tenant.status = TenantStatus::Closed,
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::scenario::given;
    use crate::event::assert_round_trips;

    fn onboarded() -> TenantEvent {
        TenantEvent::TenantOnboarded {
            tenant_id: TenantId::from_uuid(uuid::Uuid::nil()),
            business_name: BusinessName::parse("Demo Salon").unwrap(),
            slug: TenantSlug::parse("demo-salon").unwrap(),
            contact_email: Email::parse("owner@demo.example").unwrap(),
            time_zone: IanaTimeZone::parse("Europe/Madrid").unwrap(),
            plan: Plan::Starter,
            trial_ends_at: "2026-12-10T00:00:00Z".parse().unwrap(),
            email_verified: true,
        }
    }

    fn email() -> Email {
        Email::parse("owner@demo.example").unwrap()
    }

    fn expires() -> DateTime<Utc> {
        "2026-12-03T00:00:00Z".parse().unwrap()
    }

    /// Onboarded since verification: the contact email not verified yet.
    fn onboarded_unverified() -> [TenantEvent; 2] {
        let TenantEvent::TenantOnboarded {
            tenant_id,
            business_name,
            slug,
            contact_email,
            time_zone,
            plan,
            trial_ends_at,
            ..
        } = onboarded()
        else {
            unreachable!()
        };
        [
            TenantEvent::TenantOnboarded {
                tenant_id,
                business_name,
                slug,
                contact_email,
                time_zone,
                plan,
                trial_ends_at,
                email_verified: false,
            },
            TenantEvent::EmailVerificationRequested {
                email: email(),
                expires_at: expires(),
            },
        ]
    }

    fn connected(id: &str) -> TenantEvent {
        TenantEvent::WhatsAppNumberConnected {
            phone_number_id: id.into(),
            display_phone_number: "+34 600 000 000".into(),
        }
    }

    fn number(id: &str) -> WhatsAppNumber {
        WhatsAppNumber {
            phone_number_id: id.into(),
            display_phone_number: "+34 600 000 000".into(),
        }
    }

    fn reason(s: &str) -> Reason {
        Reason::parse(s).unwrap()
    }

    #[test]
    fn onboarding_starts_an_active_tenant_once_whose_email_is_to_verify() {
        let TenantEvent::TenantOnboarded {
            tenant_id,
            business_name,
            slug,
            contact_email,
            time_zone,
            plan,
            trial_ends_at,
            ..
        } = onboarded()
        else {
            unreachable!()
        };
        let command = TenantCommand::Onboard {
            tenant_id,
            business_name,
            slug,
            contact_email,
            time_zone,
            plan,
            trial_ends_at,
            verification_expires_at: expires(),
        };
        given::<Tenant>(&[])
            .when(command.clone())
            .then_expect(&onboarded_unverified());
        given::<Tenant>(&onboarded_unverified())
            .when(command)
            .then_expect_error(TenantError::AlreadyOnboarded);
        let state = Tenant::fold(&onboarded_unverified()).onboarded.unwrap();
        assert_eq!(state.status, TenantStatus::Active);
        assert!(!state.email_verified);
    }

    #[test]
    fn an_unverified_business_cannot_connect_whatsapp_until_its_owner_follows_the_link() {
        let [onboarded, requested] = onboarded_unverified();
        let unverified = [onboarded, requested];
        given::<Tenant>(&unverified)
            .when(TenantCommand::ConnectWhatsApp(number("1")))
            .then_expect_error(TenantError::EmailNotVerified);
        let verified_event = TenantEvent::EmailVerified { email: email() };
        given::<Tenant>(&unverified)
            .when(TenantCommand::VerifyEmail { email: email() })
            .then_expect(std::slice::from_ref(&verified_event));
        let mut verified = unverified.to_vec();
        verified.push(verified_event);
        // A second click changes nothing; another link is no longer needed.
        given::<Tenant>(&verified)
            .when(TenantCommand::VerifyEmail { email: email() })
            .then_expect(&[]);
        given::<Tenant>(&verified)
            .when(TenantCommand::RequestEmailVerification {
                expires_at: expires(),
            })
            .then_expect_error(TenantError::EmailAlreadyVerified);
        given::<Tenant>(&verified)
            .when(TenantCommand::ConnectWhatsApp(number("1")))
            .then_expect(&[connected("1")]);
    }

    #[test]
    fn a_link_sent_to_an_earlier_address_does_not_verify_the_new_one() {
        let new = Email::parse("new@demo.example").unwrap();
        let mut changed = onboarded_unverified().to_vec();
        changed.push(TenantEvent::TenantProfileUpdated {
            business_name: None,
            contact_email: Some(new.clone()),
            time_zone: None,
        });
        given::<Tenant>(&changed)
            .when(TenantCommand::VerifyEmail { email: email() })
            .then_expect_error(TenantError::EmailChanged);
        // Another link goes to the address the business has now.
        given::<Tenant>(&changed)
            .when(TenantCommand::RequestEmailVerification {
                expires_at: expires(),
            })
            .then_expect(&[TenantEvent::EmailVerificationRequested {
                email: new,
                expires_at: expires(),
            }]);
    }

    #[test]
    fn a_business_onboarded_before_verification_existed_reads_as_verified() {
        let old: TenantEvent = crate::event::decode(
            "TenantOnboarded",
            &serde_json::json!({
                "tenant_id": uuid::Uuid::nil(), "business_name": "Demo Salon",
                "slug": "demo-salon", "contact_email": "owner@demo.example",
                "time_zone": "Europe/Madrid", "plan": "starter",
                "trial_ends_at": "2026-12-10T00:00:00Z"
            }),
        )
        .unwrap();
        assert_eq!(old, onboarded());
        assert!(Tenant::fold(&[old]).onboarded.unwrap().email_verified);
    }

    #[test]
    fn nothing_happens_to_a_tenant_that_does_not_exist() {
        given::<Tenant>(&[])
            .when(TenantCommand::Reinstate)
            .then_expect_error(TenantError::NotOnboarded);
    }

    #[test]
    fn a_profile_update_records_only_what_changes() {
        given::<Tenant>(&[onboarded()])
            .when(TenantCommand::UpdateProfile {
                business_name: Some(BusinessName::parse("Demo Salon").unwrap()),
                contact_email: Some(Email::parse("new@demo.example").unwrap()),
                time_zone: None,
            })
            .then_expect(&[TenantEvent::TenantProfileUpdated {
                business_name: None,
                contact_email: Some(Email::parse("new@demo.example").unwrap()),
                time_zone: None,
            }]);
        given::<Tenant>(&[onboarded()])
            .when(TenantCommand::UpdateProfile {
                business_name: Some(BusinessName::parse("Demo Salon").unwrap()),
                contact_email: None,
                time_zone: None,
            })
            .then_expect_error(TenantError::NothingToUpdate);
    }

    #[test]
    fn connecting_another_number_disconnects_the_old_one() {
        given::<Tenant>(&[onboarded(), connected("111")])
            .when(TenantCommand::ConnectWhatsApp(number("222")))
            .then_expect(&[
                TenantEvent::WhatsAppNumberDisconnected {
                    phone_number_id: "111".into(),
                },
                connected("222"),
            ]);
    }

    #[test]
    fn invalid_credentials_are_recorded_once_and_cured_by_reconnecting() {
        let invalidated = TenantEvent::WhatsAppCredentialsInvalidated {
            phone_number_id: "111".into(),
            meta_error_code: 190,
        };
        let invalidate = TenantCommand::InvalidateWhatsAppCredentials {
            meta_error_code: 190,
        };
        given::<Tenant>(&[onboarded(), connected("111")])
            .when(invalidate.clone())
            .then_expect(std::slice::from_ref(&invalidated));
        given::<Tenant>(&[onboarded(), connected("111"), invalidated.clone()])
            .when(invalidate.clone())
            .then_expect(&[]);
        given::<Tenant>(&[onboarded()])
            .when(invalidate)
            .then_expect_error(TenantError::NoWhatsAppNumber);
        let state = Tenant::fold(&[onboarded(), connected("111"), invalidated, connected("111")]);
        assert!(state.onboarded.unwrap().whatsapp_credentials_valid);
    }

    #[test]
    fn suspension_and_reinstatement_alternate() {
        let suspended = TenantEvent::TenantSuspended {
            reason: reason("abuse"),
            cause: SuspensionCause::Operator,
        };
        given::<Tenant>(&[onboarded()])
            .when(TenantCommand::Suspend {
                reason: reason("abuse"),
                cause: SuspensionCause::Operator,
            })
            .then_expect(std::slice::from_ref(&suspended));
        given::<Tenant>(&[onboarded(), suspended.clone()])
            .when(TenantCommand::Suspend {
                reason: reason("again"),
                cause: SuspensionCause::NonPayment,
            })
            .then_expect_error(TenantError::Suspended);
        given::<Tenant>(&[onboarded()])
            .when(TenantCommand::Reinstate)
            .then_expect_error(TenantError::NotSuspended);
        given::<Tenant>(&[onboarded(), suspended.clone()])
            .when(TenantCommand::Reinstate)
            .then_expect(&[TenantEvent::TenantReinstated]);
        // A payment lifts a suspension for non-payment, never an operator's.
        given::<Tenant>(&[onboarded(), suspended])
            .when(TenantCommand::ReinstateAfterPayment)
            .then_expect(&[]);
        let unpaid = TenantEvent::TenantSuspended {
            reason: reason("an unpaid invoice"),
            cause: SuspensionCause::NonPayment,
        };
        given::<Tenant>(&[onboarded(), unpaid])
            .when(TenantCommand::ReinstateAfterPayment)
            .then_expect(&[TenantEvent::TenantReinstated]);
    }

    #[test]
    fn a_suspension_stored_before_billing_reads_as_the_operators() {
        let old: TenantEvent =
            crate::event::decode("TenantSuspended", &serde_json::json!({"reason": "abuse"}))
                .unwrap();
        assert_eq!(
            old,
            TenantEvent::TenantSuspended {
                reason: reason("abuse"),
                cause: SuspensionCause::Operator
            }
        );
    }

    #[test]
    fn a_closed_tenant_refuses_everything() {
        let closed = TenantEvent::TenantClosed {
            reason: reason("moved away"),
        };
        given::<Tenant>(&[onboarded(), closed.clone()])
            .when(TenantCommand::Reinstate)
            .then_expect_error(TenantError::Closed);
        given::<Tenant>(&[onboarded(), closed])
            .when(TenantCommand::ConnectWhatsApp(number("1")))
            .then_expect_error(TenantError::Closed);
    }

    #[test]
    fn events_round_trip_through_the_store_format() {
        let [unverified, requested] = onboarded_unverified();
        assert_round_trips(&[
            onboarded(),
            unverified,
            requested,
            TenantEvent::EmailVerified { email: email() },
            TenantEvent::TenantProfileUpdated {
                business_name: None,
                contact_email: None,
                time_zone: Some(IanaTimeZone::parse("America/New_York").unwrap()),
            },
            connected("1"),
            TenantEvent::WhatsAppNumberDisconnected {
                phone_number_id: "1".into(),
            },
            TenantEvent::WhatsAppCredentialsInvalidated {
                phone_number_id: "1".into(),
                meta_error_code: 190,
            },
            TenantEvent::TenantSuspended {
                reason: reason("r"),
                cause: SuspensionCause::NonPayment,
            },
            TenantEvent::TenantReinstated,
            TenantEvent::TenantClosed {
                reason: reason("r"),
            },
        ]);
    }
}
