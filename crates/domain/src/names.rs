//! Enums whose variants have stable snake_case names: the names stored in the database, printed
//! in JSON and matched by scripts. One macro gives each such enum the same shape: `ALL`,
//! `as_str`, `Display`, `FromStr` and serde, all from a single list of names, so the stored and
//! the serialised forms cannot drift apart.

/// Declares an enum with named variants. `$kind` names the enum in errors (`unknown step
/// state `x``).
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident ($kind:literal) {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        $vis enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: [Self; { [$($text),+].len() }] = [$(Self::$variant),+];

            /// The stable name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = crate::Error;
            fn from_str(s: &str) -> Result<Self, crate::Error> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    _ => Err(crate::Error::UnknownName {
                        kind: $kind,
                        value: s.to_owned(),
                    }),
                }
            }
        }
    };
}

pub(crate) use named_enum;
