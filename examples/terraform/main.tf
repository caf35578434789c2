# The Terraform example DriftGuard's tests apply to moto's server (the AWS API on 127.0.0.1):
# a bucket, a VPC (in a local module), a security group and a PostgreSQL instance whose
# password is a sensitive variable. See docs/terraform.md.

terraform {
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "5.100.0"
    }
  }
  # the state's path is given to `terraform init -backend-config=path=...` (and to
  # DriftGuard's terraform.backendConfig)
  backend "local" {}
}

# credentials from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)
provider "aws" {
  region                      = var.region
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_requesting_account_id  = true
  s3_use_path_style           = true

  endpoints {
    s3  = var.aws_endpoint
    ec2 = var.aws_endpoint
    rds = var.aws_endpoint
    sts = var.aws_endpoint
  }
}

resource "aws_s3_bucket" "data" {
  bucket = "driftguard-data"

  tags = {
    team = "platform"
    env  = "prod"
  }
}

module "network" {
  source = "./modules/network"
  cidr   = "10.20.0.0/16"
}

# in the account's default VPC
resource "aws_security_group" "web" {
  name        = "web"
  description = "web servers"

  ingress {
    description = "https from the VPC"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["10.20.0.0/16"]
  }
}

resource "aws_db_instance" "db" {
  identifier          = "driftguard-db"
  engine              = "postgres"
  instance_class      = "db.t3.micro"
  allocated_storage   = 20
  username            = "app"
  password            = var.db_password
  skip_final_snapshot = true
}
