terraform {
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "5.100.0"
    }
  }
  backend "local" {}
}

variable "aws_endpoint" {
  type = string
}

provider "aws" {
  region                      = "us-east-1"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_requesting_account_id  = true

  endpoints {
    ec2      = var.aws_endpoint
    dynamodb = var.aws_endpoint
    sts      = var.aws_endpoint
  }
}

resource "aws_vpc" "main" {
  cidr_block = "10.40.0.0/16"
}

module "web_sg" {
  source = "../../modules/security-group"

  name        = "web"
  description = "web servers"
  vpc_id      = aws_vpc.main.id

  ingress_cidr_blocks = ["10.40.0.0/16"]
  ingress_rules       = ["https-443-tcp"]
  egress_rules        = ["all-all"]
}

module "orders" {
  source = "../../modules/dynamodb-table"

  name     = "orders"
  hash_key = "id"
  attributes = [
    { name = "id", type = "S" }
  ]
  point_in_time_recovery_enabled = true
  tags = {
    team = "shop"
  }
}
