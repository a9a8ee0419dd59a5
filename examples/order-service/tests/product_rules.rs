//! Every rule of the `Product` aggregate, given/when/then.

use es_core::testing::given;
use order_service::domain::MAX_AMOUNT;
use order_service::product::*;

fn listed(stock: u64) -> ProductEvent {
    ProductListed {
        name: "Apple".into(),
        unit_price_cents: 40,
        stock,
    }
    .into()
}

fn list(stock: u64) -> ListProduct {
    ListProduct {
        name: "Apple".into(),
        unit_price_cents: 40,
        stock,
    }
}

#[test]
fn a_product_is_listed_once() {
    given::<Product>([]).when(list(5)).then([listed(5)]);
    given::<Product>([listed(5)])
        .when(list(5))
        .then_error(ProductError::AlreadyListed);
}

#[test]
fn commands_need_a_listed_product() {
    given::<Product>([])
        .when(Restock { quantity: 1 })
        .then_error(ProductError::NotListed);
    given::<Product>([])
        .when(ReserveStock { quantity: 1 })
        .then_error(ProductError::NotListed);
    given::<Product>([])
        .when(ChangePrice {
            unit_price_cents: 1,
        })
        .then_error(ProductError::NotListed);
}

#[test]
fn stock_never_goes_below_zero() {
    given::<Product>([listed(2)])
        .when(ReserveStock { quantity: 2 })
        .then([StockReserved { quantity: 2 }]);
    given::<Product>([listed(2), StockReserved { quantity: 2 }.into()])
        .when(ReserveStock { quantity: 1 })
        .then_error(ProductError::InsufficientStock {
            in_stock: 0,
            requested: 1,
        });
    given::<Product>([listed(2)])
        .when(ReserveStock { quantity: 0 })
        .then_error(ProductError::ZeroQuantity);
}

#[test]
fn restocking_adds_units_within_bounds() {
    given::<Product>([listed(2)])
        .when(Restock { quantity: 3 })
        .then([StockAdded { quantity: 3 }]);
    given::<Product>([listed(2)])
        .when(Restock { quantity: 0 })
        .then_error(ProductError::ZeroQuantity);
    given::<Product>([listed(2)])
        .when(Restock {
            quantity: MAX_AMOUNT,
        })
        .then_error(ProductError::TooLarge);
    given::<Product>([])
        .when(list(MAX_AMOUNT + 1))
        .then_error(ProductError::TooLarge);
}

#[test]
fn the_price_changes() {
    given::<Product>([listed(2)])
        .when(ChangePrice {
            unit_price_cents: 55,
        })
        .then([PriceChanged {
            unit_price_cents: 55,
        }]);
}

/// `ProductError::CODES` (what the OpenAPI document lists) holds every refusal's code, once.
#[test]
fn every_refusal_code_is_listed() {
    let every = [
        ProductError::AlreadyListed,
        ProductError::NotListed,
        ProductError::ZeroQuantity,
        ProductError::InsufficientStock {
            in_stock: 1,
            requested: 2,
        },
        ProductError::TooLarge,
    ];
    // Fails to compile when a variant is added, so this list stays whole.
    for refusal in &every {
        match refusal {
            ProductError::AlreadyListed
            | ProductError::NotListed
            | ProductError::ZeroQuantity
            | ProductError::InsufficientStock { .. }
            | ProductError::TooLarge => {}
        }
    }
    let mut codes: Vec<&str> = every.iter().map(ProductError::code).collect();
    codes.sort_unstable();
    let mut listed = ProductError::CODES.to_vec();
    listed.sort_unstable();
    assert_eq!(codes, listed);
}
