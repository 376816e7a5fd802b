"""Market data and its chronological split: one market (``uri``) or several (``markets``)."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import ConfigDict, Field, field_validator, model_validator

from stevie_api.common import StevieModel

__all__ = ["DataSpec", "MarketSource", "SplitSpec"]


def _parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


class SplitSpec(StevieModel):
    """Chronological train / validation / test split, by dates or by fractions of the bars."""

    train_fraction: float = Field(
        default=0.7,
        gt=0,
        lt=1,
        description="Fraction of the bars (oldest first) used for training. Ignored when "
        "validationStart and testStart are given.",
    )
    validation_fraction: float = Field(
        default=0.15,
        gt=0,
        lt=1,
        description="Fraction of the bars, after the training bars, used for validation "
        "(model selection); the rest is the test split. trainFraction + validationFraction "
        "must be < 1.",
    )
    validation_start: str | None = Field(
        default=None,
        description="First timestamp of the validation split (ISO 8601 date or timestamp, "
        "e.g. 2017-01-01 or 2017-01-01T00:00:00Z; UTC when no offset). With testStart, "
        "overrides the fractions.",
    )
    test_start: str | None = Field(
        default=None,
        description="First timestamp of the test split (ISO 8601, after validationStart). "
        "With validationStart, overrides the fractions.",
    )

    @field_validator("validation_start", "test_start")
    @classmethod
    def _iso(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                _parse_time(value)
            except ValueError:
                raise ValueError(
                    f"{value!r} is not an ISO 8601 date or timestamp (e.g. 2017-01-01 or "
                    "2017-01-01T00:00:00Z)"
                ) from None
        return value

    @model_validator(mode="after")
    def _check(self) -> SplitSpec:
        if self.train_fraction + self.validation_fraction >= 1:
            raise ValueError(
                "trainFraction + validationFraction must be < 1 to leave a test split (got "
                f"{self.train_fraction} + {self.validation_fraction})"
            )
        if (self.validation_start is None) != (self.test_start is None):
            raise ValueError("validationStart and testStart must be given together")
        bounds = self.boundaries()
        if bounds is not None and bounds[0] >= bounds[1]:
            raise ValueError(
                f"validationStart ({self.validation_start}) must be before testStart "
                f"({self.test_start})"
            )
        return self

    @property
    def by_date(self) -> bool:
        """Whether the split is given by dates (else by fractions)."""
        return self.validation_start is not None

    def boundaries(self) -> tuple[datetime, datetime] | None:
        """(validation start, test start) as UTC-aware datetimes, when split by date."""
        if self.validation_start is None or self.test_start is None:
            return None
        return _parse_time(self.validation_start), _parse_time(self.test_start)


_URI_DESCRIPTION = (
    "OHLCV data (CSV or Parquet): a local path, file:///abs/path, s3://bucket/key, or "
    "pkg://python_package/path/in/package for data shipped in an installed package (e.g. "
    "pkg://gym_anytrading/datasets/data/STOCKS_GOOGL.csv)."
)
_BARS_PER_YEAR_DESCRIPTION = (
    "Bars per year, for annualising Sharpe and returns (e.g. 252 for daily stocks, 8760 for "
    "hourly crypto). Default: inferred from the timestamps."
)


class MarketSource(StevieModel):
    """One market of a multi-market run: its data, its name and its bar size."""

    uri: str = Field(min_length=1, description=_URI_DESCRIPTION)
    symbol: str | None = Field(
        default=None,
        description="Market name in reports (default: the file name); unique in the run.",
    )
    bars_per_year: float | None = Field(default=None, gt=0, description=_BARS_PER_YEAR_DESCRIPTION)


class DataSpec(StevieModel):
    """Where the OHLCV bars come from (one market, or several) and how they are split."""

    # The API server refuses neither/both too (kubectl apply fails, not the trainer's pod).
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.uri) != has(self.markets)",
                    "message": "give exactly one of data.uri (one market) or data.markets",
                }
            ]
        }
    )

    uri: str | None = Field(
        default=None,
        min_length=1,
        description=_URI_DESCRIPTION + " Give uri (one market) or markets, not both.",
    )
    symbol: str | None = Field(
        default=None, description="Instrument name used in reports (default: the file name)."
    )
    bars_per_year: float | None = Field(default=None, gt=0, description=_BARS_PER_YEAR_DESCRIPTION)
    markets: list[MarketSource] | None = Field(
        default=None,
        min_length=1,
        description="Several markets trained by one policy (the features are scale-free): "
        "training episodes are spread over them, each episode on one market; validation and "
        "test are reported per market and pooled (the mean over markets). The split applies "
        "to each market on its own bars (fractions) or dates. Instead of uri, symbol and "
        "barsPerYear.",
    )
    split: SplitSpec = Field(
        default_factory=SplitSpec, description="Chronological train/validation/test split."
    )

    @model_validator(mode="after")
    def _one_source(self) -> DataSpec:
        if (self.uri is None) == (self.markets is None):
            raise ValueError("give exactly one of data.uri (one market) or data.markets")
        if self.markets is not None:
            if self.symbol is not None or self.bars_per_year is not None:
                raise ValueError(
                    "with data.markets, set symbol and barsPerYear on each market, not on data"
                )
            names = [m.symbol or m.uri for m in self.markets]
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise ValueError(
                    f"data.markets must name each market once (repeated: {', '.join(repeated)})"
                )
        return self

    @property
    def multi_market(self) -> bool:
        """Whether the spec lists markets (even just one) instead of a single uri."""
        return self.markets is not None

    def sources(self) -> list[MarketSource]:
        """The markets of the spec, a single-uri spec's as one."""
        if self.markets is not None:
            return list(self.markets)
        assert self.uri is not None  # the validator guarantees one of the two
        return [MarketSource(uri=self.uri, symbol=self.symbol, bars_per_year=self.bars_per_year)]

    def only_uri(self) -> str:
        """The one market's URI; ValueError for a spec that lists markets."""
        if self.uri is None:
            names = ", ".join(m.symbol or m.uri for m in self.markets or [])
            raise ValueError(f"this needs one market (data.uri), and data lists several: {names}")
        return self.uri

    def single(self, source: MarketSource) -> DataSpec:
        """The single-market DataSpec of one of the sources, with this spec's split."""
        return DataSpec(
            uri=source.uri,
            symbol=source.symbol,
            bars_per_year=source.bars_per_year,
            split=self.split,
        )
